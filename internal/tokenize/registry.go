package tokenize

import (
	"fmt"
	"sort"
	"strings"
)

// Counter counts the tokens of text for one tokenizer.
type Counter interface {
	// Name is the tokenizer's name: "o200k_base", "cl100k_base", "qwen2",
	// "deepseek_v3" or "estimate".
	Name() string
	// Exact reports whether Count reproduces the tokenizer exactly.
	Exact() bool
	// Count returns the number of tokens in text.
	Count(text string) int
}

// Interface guards.
var (
	_ Counter = (*Encoding)(nil)
	_ Counter = estimator{}
)

// estimator is the Counter for tokenizers that are not public.
type estimator struct{}

// EstimateCounter counts with Estimate; its counts are never exact.
var EstimateCounter Counter = estimator{}

// Name, Exact and Count implement Counter with Estimate.
func (estimator) Name() string          { return "estimate" }
func (estimator) Exact() bool           { return false }
func (estimator) Count(text string) int { return Estimate(text) }

// ByName returns the counter named name ("o200k_base", "cl100k_base",
// "qwen2", "deepseek_v3" or "estimate").
func ByName(name string) (Counter, bool) {
	if name == "estimate" {
		return EstimateCounter, true
	}
	e, ok := Encodings[name]
	if !ok {
		return nil, false
	}
	return e, true
}

// Names lists the names ByName accepts.
func Names() []string {
	n := []string{"estimate"}
	for k := range Encodings {
		n = append(n, k)
	}
	sort.Strings(n)
	return n
}

// rule maps model names with a prefix to a counter. exact is false where
// the vendor has not said which tokenizer the model uses, so the count is
// the nearest public tokenizer's and only an estimate.
type rule struct {
	prefix string
	c      Counter
	exact  bool
}

// rules is checked in order; the first matching prefix wins.
var rules = []rule{
	// OpenAI. gpt-4o and later, and the o-series, use o200k_base.
	{"gpt-4o", O200k, true},
	{"chatgpt-4o", O200k, true},
	{"gpt-4.1", O200k, true},
	{"gpt-4.5", O200k, true},
	{"gpt-5", O200k, true},
	{"gpt-oss", O200k, true},
	{"o1", O200k, true},
	{"o3", O200k, true},
	{"o4", O200k, true},
	{"gpt-4", CL100k, true},
	{"gpt-3.5", CL100k, true},
	{"gpt-35", CL100k, true},
	{"text-embedding-3", CL100k, true},
	{"text-embedding-ada-002", CL100k, true},
	// Qwen: open and commercial models share the Qwen2 vocabulary.
	{"qwen", Qwen2, true},
	{"qwq", Qwen2, true},
	{"qvq", Qwen2, true},
	// DeepSeek: V3, V3.1, V3.2 and R1 publish this tokenizer. deepseek-chat,
	// deepseek-reasoner and the V4 models are served by V4, whose tokenizer
	// is not verified here: counted with V3's, reported as estimated.
	// R1's distilled models keep their base model's vocabulary (with
	// DeepSeek's chat tokens): Qwen2.5's for the Qwen ones; Llama's is not
	// embedded.
	{"deepseek-r1-distill-qwen", Qwen2, false},
	{"deepseek-r1-distill-llama", EstimateCounter, false},
	{"deepseek-v3", DeepSeekV3, true},
	{"deepseek-r1", DeepSeekV3, true},
	{"deepseek", DeepSeekV3, false},
}

// normalizeModel lower-cases a model name and drops a vendor prefix such as
// "openai/" or "deepseek-ai/".
func normalizeModel(model string) string {
	m := strings.ToLower(strings.TrimSpace(model))
	if i := strings.LastIndexByte(m, '/'); i >= 0 {
		m = m[i+1:]
	}
	return m
}

// ForModel returns the counter for a model and whether its counts are exact.
// Models whose tokenizer is not public (Doubao, Hunyuan, ERNIE, Kimi, GLM,
// Claude, Gemini, unknown names) get the estimator.
func ForModel(model string) (Counter, bool) {
	m := normalizeModel(model)
	for _, r := range rules {
		if strings.HasPrefix(m, r.prefix) {
			return r.c, r.exact
		}
	}
	return EstimateCounter, false
}

// Registry maps models to counters with overrides, for example per channel
// when a reseller serves a model under another name. The zero value is not
// usable; create one with NewRegistry. A Registry is not safe for concurrent
// modification; build it, then share it read-only.
type Registry struct {
	overrides map[string]override
}

type override struct {
	c     Counter
	exact bool
}

// NewRegistry returns a registry with no overrides.
func NewRegistry() *Registry { return &Registry{overrides: map[string]override{}} }

// Set makes model (matched after lower-casing and dropping a vendor prefix;
// a trailing "*" matches any suffix) use the tokenizer named tokenizer.
// exact says whether the operator knows the model uses that tokenizer; it is
// ignored for "estimate".
func (r *Registry) Set(model, tokenizer string, exact bool) error {
	c, ok := ByName(tokenizer)
	if !ok {
		return fmt.Errorf("tokenizer %q: unknown (known: %s)", tokenizer, strings.Join(Names(), ", "))
	}
	r.overrides[normalizeModel(model)] = override{c, exact && c.Exact()}
	return nil
}

// ForModel returns the override for model if there is one, else the
// package-level ForModel's answer.
func (r *Registry) ForModel(model string) (Counter, bool) {
	m := normalizeModel(model)
	if o, ok := r.overrides[m]; ok {
		return o.c, o.exact
	}
	best := ""
	var found override
	for k, o := range r.overrides {
		if p, ok := strings.CutSuffix(k, "*"); ok && strings.HasPrefix(m, p) && len(p) >= len(best) {
			best, found = p, o
		}
	}
	if found.c != nil {
		return found.c, found.exact
	}
	return ForModel(model)
}
