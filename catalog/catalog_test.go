package catalog

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"baimo/internal/money"
	"baimo/internal/price"
	"baimo/internal/usage"
)

// TestEmbeddedCatalogLoads checks that the shipped data loads and that every
// rule kind is used by at least one real model (the simulator does not count).
func TestEmbeddedCatalogLoads(t *testing.T) {
	c, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	used := map[string][]string{}
	for _, m := range c.Models() {
		for _, cur := range m.Currencies() {
			for _, v := range m.Lists[cur] {
				for _, k := range v.RuleKinds() {
					if m.Vendor != "sim" {
						used[k] = append(used[k], m.Name)
					}
				}
				if v.Source == "" {
					t.Errorf("%s: no source", v.ID)
				}
			}
		}
	}
	var missing []string
	for _, k := range price.AllRuleKinds() {
		if len(used[k]) == 0 {
			missing = append(missing, k)
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Errorf("rule kinds without a real model: %s", strings.Join(missing, ", "))
	}
	for _, name := range []string{"sim-chat", "sim-embed", "deepseek-chat", "qwen-long", "claude-sonnet-4-5", "gemini-2.5-pro", "hunyuan-lite"} {
		if _, ok := c.Model(name); !ok {
			t.Errorf("model %s missing", name)
		}
	}
	if _, ok := c.Calendar("cn"); !ok {
		t.Error("calendar cn missing")
	}
}

// TestModelLimits checks that every chat model (and every embedding or
// rerank model's context window) is known: the request's hold is the prompt
// plus the output the model may really produce, so a chat model without its
// maximum output cannot be held exactly.
func TestModelLimits(t *testing.T) {
	c, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	var missing []string
	for _, m := range c.Models() {
		info := m.Info()
		switch m.Kind {
		case "chat":
			if info.ContextWindow == 0 || info.MaxOutput == 0 {
				missing = append(missing, fmt.Sprintf("%s (context %d, output %d)", m.Name, info.ContextWindow, info.MaxOutput))
			}
		case "embedding", "rerank":
			if info.ContextWindow == 0 {
				missing = append(missing, fmt.Sprintf("%s (context unknown)", m.Name))
			}
		}
		if info.InputModalities == nil || info.OutputModalities == nil {
			missing = append(missing, m.Name+" (modalities unknown)")
		}
	}
	if len(missing) > 0 {
		t.Errorf("%d models without their limits or modalities:\n  %s", len(missing), strings.Join(missing, "\n  "))
	}
}

// sdkDefaults are the models the official SDKs' and vendors' quick starts use
// by default: a new user tries these first.
var sdkDefaults = []string{
	"gpt-4o-mini", "gpt-4o", "gpt-4.1", "gpt-5", "o4-mini", "text-embedding-3-small", "dall-e-3", "whisper-1", "tts-1",
	"claude-haiku-4-5", "claude-sonnet-4-5", "claude-sonnet-4-5-20250929", "gemini-2.5-flash", "gemini-2.5-pro",
	"deepseek-chat", "deepseek-reasoner", "qwen-plus", "qwen-turbo", "text-embedding-v4", "hunyuan-turbos-latest",
	"ernie-4.5-turbo-128k", "moonshot-v1-8k", "kimi-k2.5", "glm-4.5", "glm-4-flash", "doubao-seed-1-6-250615",
}

// TestExampleAndSDKModelsPriced checks that a zero-config CNY gateway (no
// exchange rates configured: the catalog's reference rates only) prices every
// model examples/config.yaml serves and every SDK default.
func TestExampleAndSDKModelsPriced(t *testing.T) {
	c, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join("..", "examples", "config.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		Billing struct {
			FreeModels []string `yaml:"free_models"`
		} `yaml:"billing"`
		Channels []struct {
			Name   string    `yaml:"name"`
			Models yaml.Node `yaml:"models"`
		} `yaml:"channels"`
	}
	if err := yaml.Unmarshal(b, &cfg); err != nil {
		t.Fatal(err)
	}
	free := map[string]bool{}
	for _, m := range cfg.Billing.FreeModels {
		free[m] = true
	}
	type served struct{ public, upstream, from string }
	var all []served
	for _, ch := range cfg.Channels {
		switch ch.Models.Kind {
		case yaml.SequenceNode:
			for _, n := range ch.Models.Content {
				all = append(all, served{n.Value, n.Value, "examples/config.yaml channel " + ch.Name})
			}
		case yaml.MappingNode:
			for i := 0; i+1 < len(ch.Models.Content); i += 2 {
				all = append(all, served{ch.Models.Content[i].Value, ch.Models.Content[i+1].Value, "examples/config.yaml channel " + ch.Name})
			}
		}
	}
	for _, m := range sdkDefaults {
		all = append(all, served{m, m, "SDK default"})
	}
	at := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	for _, s := range all {
		if free[s.public] {
			continue
		}
		name := s.public
		if _, ok := c.Model(s.upstream); ok {
			name = s.upstream // the gateway rates by the upstream name when the catalog knows it
		}
		u := usage.Usage{Input: 1000, Output: 1000}
		if info, ok := c.Info(name, at); ok {
			switch info.Kind {
			case "embedding", "rerank":
				u = usage.Usage{Input: 1000}
			case "image":
				u = usage.Usage{Images: 1}
			case "audio":
				u = usage.Usage{AudioSeconds: 60}
			case "speech":
				u = usage.Usage{Characters: 1000}
			}
		}
		if _, err := c.Rate(u, price.RateContext{Model: name, At: at, Currency: money.CNY, Rates: c.ReferenceRates()}, nil); err != nil {
			t.Errorf("%s (%s): %v", s.public, s.from, err)
		}
	}
}
