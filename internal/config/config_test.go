package config

import (
	"strings"
	"testing"
	"time"

	"baimo/internal/route"
)

func TestParse(t *testing.T) {
	t.Setenv("BAIMO_TEST_DS_KEY", "sk-secret-value")
	c, err := Parse("c.yaml", []byte(`
sim: {enabled: false}
limits: {first_byte_timeout: 5s}
channels:
  - name: deepseek
    kind: openai
    base_url: https://api.deepseek.com/v1/
    api_key: ${BAIMO_TEST_DS_KEY}
    models: [deepseek-chat, deepseek-reasoner]
  - name: qwen
    kind: openai
    base_url: https://dashscope.aliyuncs.com/compatible-mode/v1
    api_key: ${BAIMO_TEST_UNSET_KEY}
    models: {qwen: qwen-plus}
`))
	if err != nil {
		t.Fatal(err)
	}
	if c.Sim.On() || c.Limits.FirstByteTimeout.D() != 5*time.Second || c.Limits.MaxBodyBytes != 8<<20 {
		t.Errorf("sim/limits = %+v %+v", c.Sim, c.Limits)
	}
	ds, qw := c.Channels[0], c.Channels[1]
	if !ds.Active || ds.APIKey.Value() != "sk-secret-value" || ds.BaseURL != "https://api.deepseek.com/v1" ||
		ds.Models["deepseek-chat"] != "deepseek-chat" {
		t.Errorf("deepseek = %+v", ds)
	}
	if qw.Active || !strings.Contains(qw.InactiveReason, "BAIMO_TEST_UNSET_KEY") || qw.Models["qwen"] != "qwen-plus" {
		t.Errorf("qwen = %+v", qw)
	}
	if s := ds.APIKey.String(); strings.Contains(s, "secret") {
		t.Errorf("secret printed: %s", s)
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct{ in, want string }{
		{"channels:\n  - name: a\n    kind: grpc\n    base_url: http://x\n    models: [m]\n", "c.yaml: channels[0].kind: unknown kind \"grpc\""},
		{"channels:\n  - name: a\n    kind: openai\n    base_url: ftp://x\n    models: [m]\n", "channels[0].base_url"},
		{"channels:\n  - name: a\n    kind: openai\n    base_url: http://x\n", "channels[0].models"},
		{"channels:\n  - {name: a, kind: openai, base_url: 'http://x', models: [m]}\n  - {name: a, kind: openai, base_url: 'http://y', models: [m]}\n", "channels[1].name"},
		{"chanels: []\n", "field chanels not found"},
		{"limits: {first_byte_timeout: soon}\n", "not a duration"},
		{"channels:\n  - {name: a, kind: openai, base_url: 'http://x', models: [m], api_key: 'x${Y}'}\n", "literal or exactly ${VAR}"},
		{"billing: {currency: EUR}\n", "billing.currency"},
		{"usage: {batch_size: 0, queue_size: 1}\nlimits: {max_body_bytes: 10}\n", "limits.max_body_bytes"},
		{"routing: {probes: {interval: soon}}\n", "line 1: \"soon\" is not a duration"},
		{"routing: {probes: {interval: 10ms}}\n", "routing.probes.interval: 10ms is outside 1s..24h0m0s"},
		{"routing: {probes: {interval: 10s, timeout: 30s}}\n", "routing.probes.timeout: 30s is longer than the interval 10s"},
		{"routing: {probes: {concurrency: 1000}}\n", "routing.probes.concurrency: 1000 is outside 1..64"},
		{"routing: {probes: {intervall: 30s}}\n", "field intervall not found"},
		{"rate_limits: {key: {rpm: 30, burst: 40}}\n", "rate_limits.key: burst 40 is outside 0..rpm (30)"},
		{"rate_limits: {keys: {k1: {tpm: -1}}}\n", "rate_limits.keys.k1: tpm -1"},
		{"rate_limits: {model: {concurrency: 2000000}}\n", "rate_limits.model: concurrency 2000000"},
		{"rate_limits: {redis: {addr: 'x:6379', timeout: 1m}}\n", "rate_limits.redis.timeout: 1m0s is outside 0..10s"},
		{"rate_limits: {redis: {addr: 'x:6379', lease_ttl: 10ms}}\n", "rate_limits.redis.lease_ttl: 10ms is outside 1s..1h"},
		{"telemetry: {protocol: thrift}\n", "telemetry.protocol: unknown protocol \"thrift\""},
		{"telemetry: {endpoint: 'collector:4318'}\n", "telemetry.endpoint"},
		{"telemetry: {sample_ratio: 1.5}\n", "telemetry.sample_ratio: 1.5 is outside 0..1"},
		{"telemetry: {export_interval: 10ms}\n", "telemetry.export_interval: 10ms is outside 1s..1h"},
	}
	for _, tt := range tests {
		_, err := Parse("c.yaml", []byte(tt.in))
		if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.HasPrefix(err.Error(), "config c.yaml: ") {
			t.Errorf("Parse(%q) err = %v, want it to name the file and contain %q", tt.in, err, tt.want)
		}
	}
	if _, err := Parse("empty.yaml", nil); err != nil {
		t.Errorf("empty config: %v", err)
	}
}

func TestParseTelemetry(t *testing.T) {
	c, err := Parse("c.yaml", nil)
	if err != nil {
		t.Fatal(err)
	}
	if tl := c.Telemetry; tl.Enabled || tl.CaptureContent || tl.Endpoint != "http://localhost:4318" || tl.Protocol != ProtocolHTTP ||
		tl.Ratio() != 1 || tl.ExportInterval.D() != 30*time.Second || tl.ServiceName != "baimo" {
		t.Errorf("defaults: %+v", tl)
	}
	t.Setenv("OTEL_KEY", "s3cret")
	c, err = Parse("c.yaml", []byte("telemetry:\n  enabled: true\n  endpoint: https://otel.example/\n  protocol: http\n"+
		"  headers: {x-api-key: '${OTEL_KEY}'}\n  sample_ratio: 0\n  export_interval: 5s\n  capture_content: true\n"))
	if err != nil {
		t.Fatal(err)
	}
	tl := c.Telemetry
	if !tl.Enabled || !tl.CaptureContent || tl.Endpoint != "https://otel.example" || tl.Protocol != ProtocolHTTP ||
		tl.Ratio() != 0 || tl.ExportInterval.D() != 5*time.Second || tl.Headers["x-api-key"].Value() != "s3cret" {
		t.Errorf("parsed: %+v", tl)
	}
	c, err = Parse("c.yaml", []byte("telemetry: {enabled: true, protocol: grpc}\n"))
	if err != nil || c.Telemetry.Protocol != ProtocolGRPC || c.Telemetry.Endpoint != "http://localhost:4317" {
		t.Errorf("grpc: %+v, %v; want the gRPC port by default", c.Telemetry, err)
	}
}

func TestParseProbes(t *testing.T) {
	tests := []struct {
		in   string
		want *route.ProbeConfig // nil: probes off
	}{
		{"sim: {enabled: false}\n", nil},
		{"routing: {probes: }\n", nil},
		{"routing: {probes: {}}\n", &route.ProbeConfig{Interval: 30 * time.Second, Timeout: 5 * time.Second, Concurrency: 4}},
		{"routing:\n  probes:\n    interval: 2s\n    parked_keys: true\n",
			&route.ProbeConfig{Interval: 2 * time.Second, Timeout: 2 * time.Second, Concurrency: 4, ParkedKeys: true}},
		{"routing: {probes: {interval: 1m, timeout: 3s, concurrency: 8}}\n",
			&route.ProbeConfig{Interval: time.Minute, Timeout: 3 * time.Second, Concurrency: 8}},
	}
	for _, tt := range tests {
		c, err := Parse("c.yaml", []byte(tt.in))
		if err != nil {
			t.Errorf("Parse(%q): %v", tt.in, err)
			continue
		}
		switch p := c.Routing.Probes; {
		case tt.want == nil && p != nil:
			t.Errorf("Parse(%q): probes on (%+v), want off", tt.in, *p)
		case tt.want != nil && p == nil:
			t.Errorf("Parse(%q): probes off", tt.in)
		case tt.want != nil && p.Route() != *tt.want:
			t.Errorf("Parse(%q): probes %+v, want %+v", tt.in, p.Route(), *tt.want)
		}
	}
}

func TestExampleConfigLoads(t *testing.T) {
	c, err := Load("../../examples/config.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Channels) < 13 {
		t.Errorf("example has %d channels", len(c.Channels))
	}
	for _, ch := range c.Channels {
		if ch.APIKey.Var == "" {
			t.Errorf("channel %s: key is not taken from the environment", ch.Name)
		}
	}
}

func TestRateLimitsPerNode(t *testing.T) {
	tests := []struct {
		in           string
		shared, want bool
	}{
		{"rate_limits: {key: {rpm: 30}}\n", true, true},
		{"rate_limits: {key: {rpm: 30}}\n", false, false}, // one node on SQLite
		{"rate_limits: {keys: {k1: {concurrency: 2}}}\n", true, true},
		{"rate_limits: {key: {rpm: 30}, redis: {addr: 'r:6379'}}\n", true, false},
		{"rate_limits: {redis: {addr: ''}, tenant: {tpm: 1000}}\n", true, true},
		{"sim: {enabled: true}\n", true, false}, // no limits: nothing to count per node
	}
	for _, tt := range tests {
		c, err := Parse("c.yaml", []byte(tt.in))
		if err != nil {
			t.Fatalf("Parse(%q): %v", tt.in, err)
		}
		if got := c.RateLimits.PerNode(tt.shared); got != tt.want {
			t.Errorf("Parse(%q).RateLimits.PerNode(%v) = %v, want %v", tt.in, tt.shared, got, tt.want)
		}
	}
}
