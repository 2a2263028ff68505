package catalog

import (
	"fmt"
	"sort"
	"strings"
	"testing"

	"baimo/internal/price"
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
