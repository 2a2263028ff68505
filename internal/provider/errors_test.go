package provider

import (
	"strings"
	"testing"

	"baimo/internal/provider/ir"
)

// TestUpstreamErrorFaults: whose fault an upstream's error answer is decides
// whether the client gets the upstream's words and whether the key is
// parked; a fault of the request never parks a key.
func TestUpstreamErrorFaults(t *testing.T) {
	for _, tt := range []struct {
		name   string
		f      ir.Format
		status int
		body   string
		fault  Fault
		client int
		passes bool // the upstream's message reaches the client
	}{
		{"openai bad key", ir.FormatOpenAI, 401, `{"error":{"message":"Incorrect API key provided: sk-abc...xyz.","type":"invalid_request_error","code":"invalid_api_key"}}`, FaultKey, 502, false},
		{"openai no quota", ir.FormatOpenAI, 429, `{"error":{"message":"You exceeded your current quota","type":"insufficient_quota","code":"insufficient_quota"}}`, FaultKey, 502, false},
		{"openai rate limited", ir.FormatOpenAI, 429, `{"error":{"message":"Rate limit reached for gpt-4o in organization org-abcdef123 on tokens per min","type":"tokens","code":"rate_limit_exceeded"}}`, FaultRate, 429, false},
		{"openai model not allowed", ir.FormatOpenAI, 403, `{"error":{"message":"The model o3-pro does not exist or you do not have access to it.","type":"invalid_request_error","code":"model_not_found"}}`, FaultRequest, 403, true},
		{"openai content policy", ir.FormatOpenAI, 400, `{"error":{"message":"Your request was rejected as a result of our safety system.","type":"invalid_request_error","code":"content_policy_violation"}}`, FaultRequest, 400, true},
		{"openai account deactivated (403)", ir.FormatOpenAI, 403, `{"error":{"message":"Your account has been deactivated.","type":"invalid_request_error","code":"account_deactivated"}}`, FaultKey, 502, false},
		{"deepseek balance", ir.FormatOpenAI, 402, `{"error":{"message":"Insufficient Balance","type":"unknown_error","code":"invalid_request_error"}}`, FaultKey, 502, false},
		{"anthropic permission about the model", ir.FormatAnthropic, 403, `{"type":"error","error":{"type":"permission_error","message":"This model is not available for this request."}}`, FaultRequest, 403, true},
		{"anthropic permission about the key", ir.FormatAnthropic, 403, `{"type":"error","error":{"type":"permission_error","message":"Your API key does not have permission to use the specified resource."}}`, FaultKey, 502, false},
		{"anthropic credit", ir.FormatAnthropic, 400, `{"type":"error","error":{"type":"invalid_request_error","message":"Your credit balance is too low to access the Anthropic API."}}`, FaultKey, 502, false},
		{"context too long", ir.FormatOpenAI, 400, `{"error":{"message":"This model's maximum context length is 8192 tokens. However, your messages resulted in 9000 tokens.","type":"invalid_request_error","code":"context_length_exceeded"}}`, FaultRequest, 400, true},
		{"anthropic overloaded", ir.FormatAnthropic, 529, `{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}`, FaultServer, 529, false},
		{"gemini bad key (400)", ir.FormatGemini, 400, `{"error":{"code":400,"message":"API key not valid. Please pass a valid API key.","status":"INVALID_ARGUMENT","details":[{"reason":"API_KEY_INVALID"}]}}`, FaultKey, 502, false},
		{"gemini project", ir.FormatGemini, 403, `{"error":{"code":403,"message":"Generative Language API has not been used in project 1234 before or it is disabled.","status":"PERMISSION_DENIED"}}`, FaultKey, 502, false},
		{"gemini blocked", ir.FormatGemini, 400, `{"error":{"code":400,"message":"User location is not supported for the API use.","status":"FAILED_PRECONDITION"}}`, FaultRequest, 400, true},
		{"server", ir.FormatOpenAI, 500, `{"error":{"message":"internal at http://10.1.2.3:8000/v1"}}`, FaultServer, 502, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e, uf := UpstreamError(tt.f, tt.status, []byte(tt.body), 0)
			if uf.Fault != tt.fault || e.Status != tt.client {
				t.Fatalf("fault %s, client status %d; want %s, %d", uf.Fault, e.Status, tt.fault, tt.client)
			}
			if got := strings.HasPrefix(e.Message, "Upstream: "); got != tt.passes {
				t.Errorf("message %q (upstream's words passed: %v, want %v)", e.Message, got, tt.passes)
			}
		})
	}
}

// TestScrubRemovesWhatMustNotLeak: an upstream that echoes its address,
// keys and account in an error is scrubbed before a client or a log sees it.
func TestScrubRemovesWhatMustNotLeak(t *testing.T) {
	const key = "zq9-PRIVATE-upstream-key-77"
	msg := "bad request to https://internal.vendor.example:8443/v1/chat?key=abc for key sk-proj-AbCdEf123456789 " +
		"(Authorization: Bearer " + key + ") org org-Zx81kq2m user-8f8f8f8f8f owner ops@vendor.example via 10.0.0.7:9000 " +
		"host api.deepseek.com AIzaSyA1234567890abcdefghijklmnopq token=deadbeef " + key
	got := Scrub(msg, key, "https://internal.vendor.example:8443/v1")
	for _, leak := range []string{key, "internal.vendor.example", "sk-proj", "org-Zx81", "user-8f8f", "ops@", "10.0.0.7",
		"api.deepseek.com", "AIzaSy", "deadbeef", "key=abc"} {
		if strings.Contains(got, leak) {
			t.Errorf("scrubbed message still holds %q: %s", leak, got)
		}
	}
	if !strings.HasPrefix(got, "bad request to") {
		t.Errorf("scrubbed too much: %s", got)
	}
	// Where only the host of a secret address appears, or an address with
	// no scheme, or an account's number after its name.
	got = Scrub("called gpu-box-3:8000 and localhost:9000 and [::1]:8080 at upstream.internal:81 for project 847362519034 "+
		"(projects/847362519034, organization: 5f3c2b1a, account_id=77a1)", "http://upstream.internal:81/v1")
	for _, leak := range []string{"gpu-box-3", "localhost", "::1", "upstream.internal", "847362519034", "5f3c2b1a", "77a1"} {
		if strings.Contains(got, leak) {
			t.Errorf("scrubbed message still holds %q: %s", leak, got)
		}
	}
	// What is not an address or an identifier stays readable.
	for _, keep := range []string{"max_tokens: 4096 is too large", "User location is not supported", "status:500", "user 12 messages"} {
		if got := Scrub(keep); !strings.HasPrefix(got, strings.Fields(keep)[0]) || strings.Count(got, Redacted) > 1 ||
			(keep != "user 12 messages" && got != keep) {
			t.Errorf("Scrub(%q) = %q", keep, got)
		}
	}
	long := Scrub(strings.Repeat("x ", 2000))
	if len(long) > maxScrubbed+len("…") {
		t.Errorf("message not bounded: %d bytes", len(long))
	}
}

// TestUpstreamErrorScrubsSecrets: the channel's own key and address never
// reach a client, even inside a message that is passed on.
func TestUpstreamErrorScrubsSecrets(t *testing.T) {
	const key = "channel-secret-key-0123"
	e, _ := UpstreamError(ir.FormatOpenAI, 400, []byte(`{"error":{"message":"key `+key+` may not call http://upstream.internal:81/v1"}}`),
		0, key, "http://upstream.internal:81/v1")
	for _, f := range allFormats {
		_, b := ErrorBody(f, e)
		if strings.Contains(string(b), key) || strings.Contains(string(b), "upstream.internal") {
			t.Errorf("%s client sees a secret: %s", f, b)
		}
	}
}
