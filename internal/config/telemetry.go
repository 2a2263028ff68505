package config

import (
	"fmt"
	"net/url"
	"strings"
	"time"
)

// Telemetry configures OpenTelemetry export (package telemetry): a span per
// request with the GenAI semantic conventions' attributes and the
// conventions' metrics, sent over OTLP. Off unless Enabled.
type Telemetry struct {
	Enabled bool `yaml:"enabled"`
	// Endpoint is the collector's URL: for OTLP/HTTP its base URL
	// (default http://localhost:4318; traces go to /v1/traces and metrics
	// to /v1/metrics under it), for gRPC its address (default
	// http://localhost:4317; http:// is without TLS).
	Endpoint string `yaml:"endpoint"`
	// Protocol is the OTLP transport: http/protobuf (the default) or grpc.
	Protocol string `yaml:"protocol"`
	// Headers are sent with every export (a collector's API key: use
	// ${VAR}).
	Headers map[string]Secret `yaml:"headers"`
	// SampleRatio is the share of traces started here that are sampled,
	// 0..1 (default 1); a client's sampled traceparent is followed.
	SampleRatio *float64 `yaml:"sample_ratio"`
	// ExportInterval is how often metrics are exported (default 30s).
	ExportInterval Duration `yaml:"export_interval"`
	// CaptureContent exports prompts and completions as span attributes;
	// off by default, since they are the tenants' data.
	CaptureContent bool `yaml:"capture_content"`
	// ServiceName is the resource's service.name (default baimo).
	ServiceName string `yaml:"service_name"`
}

// The OTLP transports.
const (
	ProtocolHTTP = "http/protobuf"
	ProtocolGRPC = "grpc"
)

// Ratio returns the sample ratio, with its default.
func (t *Telemetry) Ratio() float64 {
	if t.SampleRatio == nil {
		return 1
	}
	return *t.SampleRatio
}

func (t *Telemetry) applyDefaults() {
	if t.Protocol == "" {
		t.Protocol = ProtocolHTTP
	}
	if t.Endpoint == "" {
		t.Endpoint = "http://localhost:4318"
		if t.Protocol == ProtocolGRPC {
			t.Endpoint = "http://localhost:4317"
		}
	}
	if t.ExportInterval == 0 {
		t.ExportInterval = Duration(30 * time.Second)
	}
	if t.ServiceName == "" {
		t.ServiceName = "baimo"
	}
}

func (t *Telemetry) check() error {
	switch t.Protocol {
	case ProtocolHTTP, "http":
		t.Protocol = ProtocolHTTP
	case ProtocolGRPC:
	default:
		return fmt.Errorf("telemetry.protocol: unknown protocol %q (http/protobuf or grpc)", t.Protocol)
	}
	u, err := url.Parse(t.Endpoint)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("telemetry.endpoint: %q is not an http(s) URL", t.Endpoint)
	}
	t.Endpoint = strings.TrimRight(t.Endpoint, "/")
	if r := t.Ratio(); !(r >= 0 && r <= 1) {
		return fmt.Errorf("telemetry.sample_ratio: %v is outside 0..1", r)
	}
	if iv := t.ExportInterval.D(); iv < time.Second || iv > time.Hour {
		return fmt.Errorf("telemetry.export_interval: %s is outside 1s..1h", iv)
	}
	for k := range t.Headers {
		if strings.TrimSpace(k) == "" {
			return fmt.Errorf("telemetry.headers: empty header name")
		}
	}
	return nil
}
