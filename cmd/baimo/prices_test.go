package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"baimo/internal/clock"
)

func runPricesCmd(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	t.Setenv("BAIMO_ADMIN_KEY", "") // the shipped catalog only
	old := pricesClock
	pricesClock = clock.NewFake(time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC))
	defer func() { pricesClock = old }()
	var out, errb bytes.Buffer
	code = run(context.Background(), append([]string{"prices"}, args...), &out, &errb)
	return code, out.String(), errb.String()
}

func TestPricesCommands(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		code     int
		contains []string // in stdout (or stderr when code != 0)
	}{
		{"history qwen-long", []string{"history", "qwen-long"}, 0,
			[]string{"2024-05-21T00:00:00+08:00", "0.0005 CNY per 1K  (-97.5%, was 0.02)", "0.002 CNY per 1K  (-90%, was 0.02)"}},
		{"history flag after model", []string{"history", "hunyuan-standard", "--json"}, 0, []string{`"percent": "-55%"`, `"percent": "-50%"`}},
		{"list deepseek", []string{"list", "--vendor", "deepseek", "--at", "2026-12-01T09:00:00+08:00"}, 0,
			[]string{"deepseek-flash", "search_call 5/1K calls", "peak x2 09:00-12:00"}},
		{"list at a past date", []string{"list", "--vendor", "qwen", "--at", "2024-06-01"}, 0, []string{"qwen-long", "0.0005"}},
		{"compare", []string{"compare", "--input", "1M", "--output", "200K", "--cached", "30%", "--paid", "--top", "3"}, 0,
			[]string{"1,000,000 input tokens (300,000 cached)", "RANK", "1 "}},
		{"compare with rate", []string{"compare", "--input", "1M", "--output", "200K", "--vendor", "anthropic", "--rate", "USD:CNY=7.1"}, 0,
			[]string{"claude-haiku-4-5", "from USD at 7.1"}},
		{"buys", []string{"buys", "1CNY", "--model", "deepseek-flash"}, 0,
			[]string{"1,000,000 tokens", "250,000 tokens", "Chinese characters"}},
		{"buys flags first", []string{"buys", "--model", "sim-chat", "2CNY"}, 0, []string{"1,000,000 tokens"}},
		{"no subcommand", nil, 2, []string{"usage:"}},
		{"unknown subcommand", []string{"lisst"}, 2, []string{"unknown prices subcommand"}},
		{"bad time", []string{"list", "--at", "yesterday"}, 2, []string{"--at"}},
		{"bad count", []string{"compare", "--input", "lots"}, 2, []string{"count"}},
		{"buys without model", []string{"buys", "1CNY"}, 2, []string{"--model"}},
		{"history unknown model", []string{"history", "no-such-model"}, 1, []string{"no price for model no-such-model"}},
		{"buys at the reference rate", []string{"buys", "1CNY", "--model", "gpt-4o"}, 0, []string{"57,259 tokens"}},
		{"buys without any rate", []string{"buys", "1EUR", "--model", "gpt-4o"}, 1, []string{"no exchange rate USD→EUR"}},
		{"history of an alias", []string{"history", "gpt-4o-2024-08-06"}, 0, []string{"gpt-4o (openai)", "USD list"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errb := runPricesCmd(t, tt.args...)
			if code != tt.code {
				t.Fatalf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tt.code, out, errb)
			}
			text := out
			if code != 0 {
				text = errb
			}
			for _, want := range tt.contains {
				if !strings.Contains(text, want) {
					t.Errorf("output lacks %q:\n%s", want, text)
				}
			}
		})
	}
}

func TestPricesCompareJSON(t *testing.T) {
	code, out, errb := runPricesCmd(t, "compare", "--input", "1M", "--output", "200K", "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errb)
	}
	var got struct {
		Ranked []struct {
			Rank       int    `json:"rank"`
			Model      string `json:"model"`
			Cost       string `json:"cost"`
			PerMillion string `json:"cost_per_million_tokens"`
		} `json:"ranked"`
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("bad JSON: %v\n%s", err, out)
	}
	found := false
	for _, r := range got.Ranked {
		if r.Model == "sim-chat" {
			found = true
			// 1M x 2 + 200K x 8 per 1M = 3.6 CNY; per 1.2M tokens = 3 CNY per 1M.
			if r.Cost != "3.6" || r.PerMillion != "3" {
				t.Errorf("sim-chat cost %s per million %s", r.Cost, r.PerMillion)
			}
		}
	}
	if !found {
		t.Error("sim-chat not ranked")
	}
}

func TestPricesListJSON(t *testing.T) {
	code, out, errb := runPricesCmd(t, "list", "--json", "--currency", "CNY")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errb)
	}
	var v struct {
		Models []struct {
			Name     string `json:"name"`
			Versions []struct {
				Currency string `json:"currency"`
			} `json:"versions"`
		} `json:"models"`
	}
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatal(err)
	}
	if len(v.Models) < 20 {
		t.Errorf("only %d models", len(v.Models))
	}
	for _, m := range v.Models {
		if len(m.Versions) != 1 || m.Versions[0].Currency != "CNY" {
			t.Errorf("%s: versions %+v, want one CNY version in force", m.Name, m.Versions)
		}
	}
}
