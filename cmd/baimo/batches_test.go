package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestBatchesCommands drives a batch through the CLI against `baimo serve`:
// create with --wait (the progress on stderr), get, list, results, a
// cancel refused once it has ended, and the admin API's view without an
// API key.
func TestBatchesCommands(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "c.yaml")
	if err := os.WriteFile(cfg, []byte("sim: {ttft: 1ms, tpot: 1ms, output_tokens: 5}\nbatches: {poll: 20ms}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("BAIMO_ADMIN_KEY", "adm")
	t.Setenv("BAIMO_API_KEY", "")
	startBillingArgs(t, "--data", dir, "--config", cfg)
	code, out, errb := cli(t, "keys", "create", "--name", "b")
	if code != 0 {
		t.Fatalf("keys create: %d %s", code, errb)
	}
	key := regexp.MustCompile(`sk-baimo-[A-Za-z0-9_-]+`).FindString(out)
	in := filepath.Join(dir, "in.jsonl")
	var b strings.Builder
	for i := range 12 {
		fmt.Fprintf(&b, `{"custom_id":"q%d","method":"POST","url":"/v1/chat/completions","body":{"model":"sim-chat","max_tokens":10,"messages":[{"role":"user","content":"q%d"}]}}`+"\n", i, i)
	}
	if err := os.WriteFile(in, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, _, errb := cli(t, "batches", "create", in, "--endpoint", "/v1/chat/completions"); code != 2 || !strings.Contains(errb, "API key") {
		t.Fatalf("create without a key: %d %s", code, errb)
	}
	t.Setenv("BAIMO_API_KEY", key)
	code, out, errb = cli(t, "batches", "create", in, "--endpoint", "/v1/chat/completions", "--wait", "--json")
	if code != 0 {
		t.Fatalf("create --wait: %d %s", code, errb)
	}
	var got struct {
		ID           string `json:"id"`
		Status       string `json:"status"`
		OutputFileID string `json:"output_file_id"`
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil || got.Status != "completed" || got.OutputFileID == "" {
		t.Fatalf("create --wait printed %s (%v)", out, err)
	}
	if !strings.Contains(errb, "12/12 done, 0 failed, ¥") || !strings.Contains(errb, "reserved") {
		t.Errorf("progress on stderr: %q", errb)
	}
	for _, tt := range []struct {
		args []string
		want []string
	}{
		{[]string{"batches", "get", got.ID}, []string{"completed", "12: 12 succeeded, 0 failed", "output file"}},
		{[]string{"batches", "list"}, []string{"ID", got.ID, "12/12", "/v1/chat/completions"}},
		{[]string{"batches", "results", got.ID}, []string{`"custom_id":"q0"`, `"custom_id":"q11"`, `"status_code":200`}},
	} {
		code, out, errb := cli(t, tt.args...)
		if code != 0 {
			t.Fatalf("%v: %d %s", tt.args, code, errb)
		}
		for _, w := range tt.want {
			if !strings.Contains(out, w) {
				t.Errorf("%v printed %q, want %q in it", tt.args, out, w)
			}
		}
	}
	if code, _, errb := cli(t, "batches", "cancel", got.ID); code != 1 || !strings.Contains(errb, "409") {
		t.Errorf("cancel of an ended batch: %d %s", code, errb)
	}
	if code, _, errb := cli(t, "batches", "results", got.ID, "--errors"); code != 1 || !strings.Contains(errb, "no error file") {
		t.Errorf("results --errors of a batch without errors: %d %s", code, errb)
	}
	t.Setenv("BAIMO_API_KEY", "")
	if code, out, errb := cli(t, "batches", "get", got.ID, "--json"); code != 0 || !strings.Contains(out, `"tenant_id":"default"`) {
		t.Errorf("admin get: %d %s %s", code, out, errb)
	}
	if code, out, errb := cli(t, "batches", "results", got.ID); code != 0 || strings.Count(out, "\n") != 12 {
		t.Errorf("admin results: %d %d lines %s", code, strings.Count(out, "\n"), errb)
	}
}
