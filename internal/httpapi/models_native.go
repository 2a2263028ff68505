package httpapi

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"baimo/internal/apierr"
	"baimo/internal/keys"
	"baimo/internal/provider/ir"
)

// The model lists in Anthropic's and Gemini's own shapes. Both list the
// models the key may use (the OpenAI list's rule), sorted by id, and page
// through them by position in that order: a cursor is the last (or first)
// id a client saw, so a page boundary holds even if a model is added or
// removed between two pages, and a cursor naming a model that is not in the
// list still means "the ids after (or before) this one" and reveals nothing.

// modelCreated is when every served model is said to have been created:
// the OpenAI list's fixed "created", so the three lists agree.
var modelCreated = time.Unix(1700000000, 0).UTC()

// Limits on the lists' query parameters.
const (
	anthropicDefaultLimit = 20   // Anthropic's default page
	anthropicMaxLimit     = 1000 // Anthropic's largest page
	geminiDefaultPageSize = 50   // Gemini's default page
	geminiMaxPageSize     = 1000 // Gemini serves at most this many, whatever is asked
	maxModelCursor        = 512  // bytes in an after_id, before_id or pageToken
	maxLifecycleValues    = 3
)

// geminiMethods are the Gemini methods baimo serves for every model
// (gemini.go).
var geminiMethods = []string{"generateContent", "streamGenerateContent", "countTokens"}

// geminiTokenPrefix starts every decoded pageToken, so a token from
// elsewhere is refused rather than read as an id.
const geminiTokenPrefix = "baimo-models-after:"

// byClient serves a request with anthropic when it comes from an Anthropic
// client, which always sends anthropic-version, and with openai otherwise,
// so an OpenAI client's answer does not change.
func byClient(openai, anthropic http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Anthropic-Version") != "" {
			anthropic(w, r)
			return
		}
		openai(w, r)
	}
}

// allowedModels returns the served models k may use, sorted by id.
func (s *Server) allowedModels(k *keys.Key) []string {
	var ids []string
	for _, m := range s.GW.Models() {
		if k.Allows(m) {
			ids = append(ids, m)
		}
	}
	sort.Strings(ids)
	return ids
}

// anthropicModel is one model in Anthropic's shape. Anthropic's ModelInfo
// also has these nullable fields; baimo knows none of them, so they are null.
type anthropicModel struct {
	Type           string    `json:"type"`
	ID             string    `json:"id"`
	DisplayName    string    `json:"display_name"`
	CreatedAt      string    `json:"created_at"`
	Lifecycle      string    `json:"lifecycle"`
	Capabilities   *struct{} `json:"capabilities"`
	DeprecatedAt   *string   `json:"deprecated_at"`
	RetiresAt      *string   `json:"retires_at"`
	Line           *string   `json:"line"`
	MaxInputTokens *int64    `json:"max_input_tokens"`
	MaxTokens      *int64    `json:"max_tokens"`
}

func newAnthropicModel(id string) anthropicModel {
	return anthropicModel{Type: "model", ID: id, DisplayName: id, CreatedAt: modelCreated.Format(time.RFC3339), Lifecycle: "active"}
}

// anthropicModelList is Anthropic's page of models.
type anthropicModelList struct {
	Data    []anthropicModel `json:"data"`
	HasMore bool             `json:"has_more"`
	FirstID *string          `json:"first_id"`
	LastID  *string          `json:"last_id"`
}

// anthropicPage is one page of the list an Anthropic client asked for.
type anthropicPage struct {
	limit             int
	afterID, beforeID string
	active            bool // whether the lifecycle filter lets active models in
}

func parseAnthropicPage(r *http.Request) (anthropicPage, *apierr.Error) {
	q := r.URL.Query()
	p := anthropicPage{limit: anthropicDefaultLimit, afterID: q.Get("after_id"), beforeID: q.Get("before_id"), active: true}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > anthropicMaxLimit {
			return p, apierr.BadRequest("limit", "limit: Input should be an integer from 1 to %d.", anthropicMaxLimit)
		}
		p.limit = n
	}
	for _, c := range [...]struct{ name, v string }{{"after_id", p.afterID}, {"before_id", p.beforeID}} {
		if len(c.v) > maxModelCursor {
			return p, apierr.BadRequest(c.name, "%s must be at most %d bytes.", c.name, maxModelCursor)
		}
	}
	if q.Has("after_id") && q.Has("before_id") {
		return p, apierr.BadRequest("after_id", "Set after_id or before_id, not both.")
	}
	// The SDK sends lifecycle[]=...; a hand-written request may send lifecycle=...
	stages := slices.Concat(q["lifecycle[]"], q["lifecycle"])
	if len(stages) > maxLifecycleValues {
		return p, apierr.BadRequest("lifecycle", "lifecycle takes at most %d values.", maxLifecycleValues)
	}
	for _, st := range stages {
		switch st {
		case "active", "deprecated", "retired":
		default:
			return p, apierr.BadRequest("lifecycle", "lifecycle: Input should be 'active', 'deprecated' or 'retired'.")
		}
	}
	// Every model baimo serves is active; retired ones appear only when
	// asked for, and there are none.
	p.active = len(stages) == 0 || slices.Contains(stages, "active")
	return p, nil
}

// listAnthropicModels serves an Anthropic client's GET /v1/models.
func (s *Server) listAnthropicModels(w http.ResponseWriter, r *http.Request) {
	k, aerr := s.GW.Authenticate(r, ir.FormatAnthropic)
	if aerr != nil {
		WriteAnthropicError(w, aerr)
		return
	}
	p, aerr := parseAnthropicPage(r)
	if aerr != nil {
		WriteAnthropicError(w, aerr)
		return
	}
	var ids []string
	if p.active {
		ids = s.allowedModels(k)
	}
	page, hasMore := pageModels(ids, p)
	out := anthropicModelList{Data: make([]anthropicModel, 0, len(page)), HasMore: hasMore}
	for _, id := range page {
		out.Data = append(out.Data, newAnthropicModel(id))
	}
	if len(page) > 0 {
		out.FirstID, out.LastID = &page[0], &page[len(page)-1]
	}
	writeJSON(w, http.StatusOK, out)
}

// pageModels returns the page of sorted ids p asks for and whether there are
// more in the direction of paging: after after_id, or before before_id.
func pageModels(ids []string, p anthropicPage) (page []string, hasMore bool) {
	if p.beforeID != "" {
		end := sort.SearchStrings(ids, p.beforeID) // ids[:end] < before_id
		start := max(0, end-p.limit)
		return ids[start:end], start > 0
	}
	start := 0
	if p.afterID != "" {
		start = sort.Search(len(ids), func(i int) bool { return ids[i] > p.afterID })
	}
	end := min(len(ids), start+p.limit)
	return ids[start:end], end < len(ids)
}

// getAnthropicModel serves an Anthropic client's GET /v1/models/{model_id}.
func (s *Server) getAnthropicModel(w http.ResponseWriter, r *http.Request) {
	k, aerr := s.GW.Authenticate(r, ir.FormatAnthropic)
	if aerr != nil {
		WriteAnthropicError(w, aerr)
		return
	}
	id := r.PathValue("model")
	if !s.serves(k, id) {
		WriteAnthropicError(w, apierr.ModelNotFound(id))
		return
	}
	writeJSON(w, http.StatusOK, newAnthropicModel(id))
}

// serves reports whether id is a served model that k may use.
func (s *Server) serves(k *keys.Key, id string) bool {
	return k.Allows(id) && slices.Contains(s.GW.Models(), id)
}

// geminiModel is one model in Gemini's shape. Gemini's Model also carries
// version, token limits and sampling defaults; baimo knows none of them
// and leaves them out, as Gemini does for fields it does not set.
type geminiModel struct {
	Name                       string   `json:"name"`
	BaseModelID                string   `json:"baseModelId"`
	DisplayName                string   `json:"displayName"`
	SupportedGenerationMethods []string `json:"supportedGenerationMethods"`
}

func newGeminiModel(id string) geminiModel {
	return geminiModel{Name: "models/" + id, BaseModelID: id, DisplayName: id, SupportedGenerationMethods: geminiMethods}
}

// geminiModelList is Gemini's page of models; nextPageToken is left out on
// the last page.
type geminiModelList struct {
	Models        []geminiModel `json:"models"`
	NextPageToken string        `json:"nextPageToken,omitempty"`
}

// parseGeminiPage reads pageSize and pageToken: the page's size and the id
// the page starts after ("" for the first page).
func parseGeminiPage(r *http.Request) (size int, after string, aerr *apierr.Error) {
	q := r.URL.Query()
	size = geminiDefaultPageSize
	if v := q.Get("pageSize"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return 0, "", apierr.BadRequest("pageSize", "Invalid value at 'page_size' (TYPE_INT32), %q: pageSize must be a non-negative integer.", truncate(v, 32))
		}
		if n > 0 {
			size = min(n, geminiMaxPageSize)
		}
	}
	if tok := q.Get("pageToken"); tok != "" {
		var ok bool
		if after, ok = decodeGeminiToken(tok); !ok {
			return 0, "", apierr.BadRequest("pageToken", "Invalid page token: pass the nextPageToken of a previous models.list answer.")
		}
	}
	return size, after, nil
}

func encodeGeminiToken(after string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(geminiTokenPrefix + after))
}

func decodeGeminiToken(tok string) (after string, ok bool) {
	if len(tok) > base64.RawURLEncoding.EncodedLen(len(geminiTokenPrefix)+maxModelCursor) {
		return "", false
	}
	b, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil {
		return "", false
	}
	after, ok = strings.CutPrefix(string(b), geminiTokenPrefix)
	return after, ok && after != ""
}

// listGeminiModels serves GET /v1beta/models.
func (s *Server) listGeminiModels(w http.ResponseWriter, r *http.Request) {
	k, aerr := s.GW.Authenticate(r, ir.FormatGemini)
	if aerr != nil {
		WriteGeminiError(w, aerr)
		return
	}
	size, after, aerr := parseGeminiPage(r)
	if aerr != nil {
		WriteGeminiError(w, aerr)
		return
	}
	page, hasMore := pageModels(s.allowedModels(k), anthropicPage{limit: size, afterID: after})
	out := geminiModelList{Models: make([]geminiModel, 0, len(page))}
	for _, id := range page {
		out.Models = append(out.Models, newGeminiModel(id))
	}
	if hasMore {
		out.NextPageToken = encodeGeminiToken(page[len(page)-1])
	}
	writeJSON(w, http.StatusOK, out)
}

// getGeminiModel serves GET /v1beta/models/{model}.
func (s *Server) getGeminiModel(w http.ResponseWriter, r *http.Request) {
	k, aerr := s.GW.Authenticate(r, ir.FormatGemini)
	if aerr != nil {
		WriteGeminiError(w, aerr)
		return
	}
	id := r.PathValue("rest")
	if !s.serves(k, id) {
		WriteGeminiError(w, apierr.NotFound(fmt.Sprintf("models/%s is not found for API version v1beta, or is not served by this gateway.", truncate(id, 256))))
		return
	}
	writeJSON(w, http.StatusOK, newGeminiModel(id))
}

// truncate cuts s to at most n bytes, for echoing client input in errors.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}
