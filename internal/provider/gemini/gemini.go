// Package gemini holds the wire types of Google's Gemini API
// (generateContent, streamGenerateContent with alt=sse) and the parsers that
// read its usageMetadata into the normalised usage.Usage.
//
// promptTokenCount already includes cachedContentTokenCount, so normalised
// Input is promptTokenCount + toolUsePromptTokenCount and CachedInput is
// cachedContentTokenCount. candidatesTokenCount excludes thinking, so Output is
// candidatesTokenCount + thoughtsTokenCount and Reasoning is
// thoughtsTokenCount. Gemini has no cache-write charge on a request, so
// CacheWrite5m and CacheWrite1h stay 0.
//
// In a stream every chunk may carry usageMetadata, each cumulative; the last
// one seen is the request's usage.
package gemini

import (
	"bytes"
	"encoding/json"
	"fmt"

	"baimo/internal/usage"
)

// Request is a generateContent request body.
type Request struct {
	Contents          []Content         `json:"contents"`
	SystemInstruction *Content          `json:"systemInstruction,omitempty"`
	Tools             []Tool            `json:"tools,omitempty"`
	ToolConfig        *ToolConfig       `json:"toolConfig,omitempty"`
	GenerationConfig  *GenerationConfig `json:"generationConfig,omitempty"`
	SafetySettings    json.RawMessage   `json:"safetySettings,omitempty"`
	CachedContent     string            `json:"cachedContent,omitempty"`
}

// Content is one turn: a role ("user" or "model") and its parts.
type Content struct {
	Role  string `json:"role,omitempty"`
	Parts []Part `json:"parts"`
}

// Part is one piece of content; exactly one data field is set.
type Part struct {
	Text             string            `json:"text,omitempty"`
	InlineData       *Blob             `json:"inlineData,omitempty"`
	FileData         *FileData         `json:"fileData,omitempty"`
	FunctionCall     *FunctionCall     `json:"functionCall,omitempty"`
	FunctionResponse *FunctionResponse `json:"functionResponse,omitempty"`
	Thought          bool              `json:"thought,omitempty"`
	ThoughtSignature string            `json:"thoughtSignature,omitempty"`
	ExecutableCode   json.RawMessage   `json:"executableCode,omitempty"`
	CodeExecResult   json.RawMessage   `json:"codeExecutionResult,omitempty"`
}

// Blob is inline base64 data.
type Blob struct {
	MimeType string `json:"mimeType"`
	Data     string `json:"data"`
}

// FileData refers to data by URI.
type FileData struct {
	MimeType string `json:"mimeType,omitempty"`
	FileURI  string `json:"fileUri"`
}

// FunctionCall is a call the model asks for.
type FunctionCall struct {
	ID   string          `json:"id,omitempty"`
	Name string          `json:"name"`
	Args json.RawMessage `json:"args,omitempty"`
}

// FunctionResponse is the result of a function call.
type FunctionResponse struct {
	ID       string          `json:"id,omitempty"`
	Name     string          `json:"name"`
	Response json.RawMessage `json:"response"`
}

// Tool is a set of function declarations (or a built-in tool, which other
// formats cannot express).
type Tool struct {
	FunctionDeclarations []FunctionDeclaration `json:"functionDeclarations,omitempty"`
	GoogleSearch         json.RawMessage       `json:"googleSearch,omitempty"`
	CodeExecution        json.RawMessage       `json:"codeExecution,omitempty"`
	URLContext           json.RawMessage       `json:"urlContext,omitempty"`
}

// FunctionDeclaration declares one function.
type FunctionDeclaration struct {
	Name                 string          `json:"name"`
	Description          string          `json:"description,omitempty"`
	Parameters           json.RawMessage `json:"parameters,omitempty"`
	ParametersJSONSchema json.RawMessage `json:"parametersJsonSchema,omitempty"`
}

// ToolConfig configures function calling.
type ToolConfig struct {
	FunctionCallingConfig *FunctionCallingConfig `json:"functionCallingConfig,omitempty"`
}

// FunctionCallingConfig sets the mode (AUTO, ANY, NONE) and allowed names.
type FunctionCallingConfig struct {
	Mode                 string   `json:"mode,omitempty"`
	AllowedFunctionNames []string `json:"allowedFunctionNames,omitempty"`
}

// GenerationConfig holds the sampling and output settings.
type GenerationConfig struct {
	StopSequences      []string        `json:"stopSequences,omitempty"`
	ResponseMimeType   string          `json:"responseMimeType,omitempty"`
	ResponseSchema     json.RawMessage `json:"responseSchema,omitempty"`
	ResponseJSONSchema json.RawMessage `json:"responseJsonSchema,omitempty"`
	CandidateCount     *int64          `json:"candidateCount,omitempty"`
	MaxOutputTokens    *int64          `json:"maxOutputTokens,omitempty"`
	Temperature        *float64        `json:"temperature,omitempty"`
	TopP               *float64        `json:"topP,omitempty"`
	TopK               *int64          `json:"topK,omitempty"`
	Seed               *int64          `json:"seed,omitempty"`
	PresencePenalty    *float64        `json:"presencePenalty,omitempty"`
	FrequencyPenalty   *float64        `json:"frequencyPenalty,omitempty"`
	ThinkingConfig     *ThinkingConfig `json:"thinkingConfig,omitempty"`
}

// ThinkingConfig configures thinking.
type ThinkingConfig struct {
	IncludeThoughts bool   `json:"includeThoughts,omitempty"`
	ThinkingBudget  *int64 `json:"thinkingBudget,omitempty"`
	ThinkingLevel   string `json:"thinkingLevel,omitempty"`
}

// Response is a GenerateContentResponse: the whole answer, or one chunk of a
// stream.
type Response struct {
	Candidates     []Candidate     `json:"candidates,omitempty"`
	PromptFeedback json.RawMessage `json:"promptFeedback,omitempty"`
	UsageMetadata  *UsageMetadata  `json:"usageMetadata,omitempty"`
	ModelVersion   string          `json:"modelVersion,omitempty"`
	ResponseID     string          `json:"responseId,omitempty"`
}

// Candidate is one generated answer.
type Candidate struct {
	Content      *Content `json:"content,omitempty"`
	FinishReason string   `json:"finishReason,omitempty"`
	Index        int      `json:"index"`
}

// UsageMetadata is Gemini's usage object.
type UsageMetadata struct {
	PromptTokenCount        int64 `json:"promptTokenCount"`
	CachedContentTokenCount int64 `json:"cachedContentTokenCount,omitempty"`
	CandidatesTokenCount    int64 `json:"candidatesTokenCount,omitempty"`
	ToolUsePromptTokenCount int64 `json:"toolUsePromptTokenCount,omitempty"`
	ThoughtsTokenCount      int64 `json:"thoughtsTokenCount,omitempty"`
	TotalTokenCount         int64 `json:"totalTokenCount"`
}

// Normalise returns m as a usage.Usage (see the package doc).
func (m UsageMetadata) Normalise() usage.Usage {
	nn := func(v int64) int64 { return max(v, 0) }
	return usage.Usage{
		Input:       nn(m.PromptTokenCount) + nn(m.ToolUsePromptTokenCount),
		CachedInput: nn(m.CachedContentTokenCount),
		Output:      nn(m.CandidatesTokenCount) + nn(m.ThoughtsTokenCount),
		Reasoning:   nn(m.ThoughtsTokenCount),
		Source:      usage.SourceVendor,
	}
}

// FromNormalised returns the usageMetadata for n. Cache writes, which Gemini
// does not report, stay inside promptTokenCount.
func FromNormalised(n usage.Usage) UsageMetadata {
	return UsageMetadata{
		PromptTokenCount:        n.Input,
		CachedContentTokenCount: n.CachedInput,
		CandidatesTokenCount:    max(n.Output-n.Reasoning, 0),
		ThoughtsTokenCount:      n.Reasoning,
		TotalTokenCount:         n.Input + n.Output,
	}
}

// ChunkUsage returns the usage carried by one response body or stream chunk,
// and whether it carried any. Data without "usageMetadata" is not decoded.
func ChunkUsage(data []byte) (usage.Usage, bool, error) {
	if !bytes.Contains(data, []byte(`"usageMetadata"`)) {
		return usage.Usage{}, false, nil
	}
	var r struct {
		UsageMetadata *UsageMetadata `json:"usageMetadata"`
	}
	if err := json.Unmarshal(data, &r); err != nil {
		return usage.Usage{}, false, fmt.Errorf("gemini usageMetadata: %w", err)
	}
	if r.UsageMetadata == nil {
		return usage.Usage{}, false, nil
	}
	return r.UsageMetadata.Normalise(), true, nil
}

// StreamUsage keeps the last usage of a stream. Its zero value is ready.
type StreamUsage struct {
	u    usage.Usage
	seen bool
}

// Chunk reads the usage of one stream chunk's data.
func (s *StreamUsage) Chunk(data []byte) error {
	u, ok, err := ChunkUsage(data)
	if err != nil {
		return err
	}
	if ok {
		s.u, s.seen = u, true
	}
	return nil
}

// Usage returns the last usage seen, and whether any was seen.
func (s *StreamUsage) Usage() (usage.Usage, bool) { return s.u, s.seen }

// Error is Gemini's (Google API) error body.
type Error struct {
	Error ErrorDetail `json:"error"`
}

// ErrorDetail is the inner error object.
type ErrorDetail struct {
	Code    int             `json:"code"`
	Message string          `json:"message"`
	Status  string          `json:"status"`
	Details json.RawMessage `json:"details,omitempty"`
}
