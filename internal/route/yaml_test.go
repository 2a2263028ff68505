package route

import (
	"bytes"
	"os"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

func TestConfigYAML(t *testing.T) {
	b, err := os.ReadFile("testdata/routing.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var cfg Config
	dec := yaml.NewDecoder(bytesReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err != nil {
		t.Fatalf("decode: %v", err)
	}
	if cfg.ChannelBreaker.Window != 30*time.Second || cfg.Models[1].Blend.InFlight != 1 || cfg.Channels[0].Keys[0].Limits.RPM != 1000 {
		t.Fatalf("decoded %+v", cfg)
	}
	r, err := New(cfg, Options{})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	s := r.Snapshot()
	if len(s.Channels) != 5 || len(s.Models) != 3 {
		t.Fatalf("snapshot: %d channels, %d models", len(s.Channels), len(s.Models))
	}
	for _, m := range s.Models {
		want := map[string]Policy{"deepseek-chat": PolicyCost, "gpt-4o": PolicyBlend, "deepseek-reasoner": PolicyBalanced}[m.Name]
		if m.Policy != want {
			t.Errorf("model %s policy %q, want %q", m.Name, m.Policy, want)
		}
	}
}

func bytesReader(b []byte) *bytes.Reader { return bytes.NewReader(b) }
