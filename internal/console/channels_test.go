package console_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// TestChannelForms adds a channel from the console, sees it served and
// listed without its key, edits, disables and deletes it; the file's
// channel stays read-only.
func TestChannelForms(t *testing.T) {
	e := newEnv(t)
	c := e.client(t, "en")
	c.signIn(adminKey)
	c.get("/ui/channels")
	secret := "sk-upstream-do-not-show-1234567890"
	st, loc := c.post("/ui/channels", url.Values{"name": {"ds"}, "kind": {"openai"}, "base_url": {"https://api.deepseek.com/v1"},
		"models": {"deepseek-chat, fast=deepseek-chat"}, "api_key": {secret}, "priority": {"1"}, "weight": {"2"}})
	if st != http.StatusSeeOther || loc != "/ui/channels?done=channel_created" {
		t.Fatalf("create = %d %s", st, loc)
	}
	served := func() string {
		_, body := c.get("/v1/models", "Authorization", "Bearer "+acmeSecret)
		return body
	}
	if m := served(); !strings.Contains(m, `"fast"`) || !strings.Contains(m, `"deepseek-chat"`) {
		t.Errorf("the new channel's models are not served: %s", m)
	}
	_, page := c.get("/ui/channels")
	_, api := c.get("/admin/channels", "Authorization", "Bearer "+adminKey)
	for where, body := range map[string]string{"page": page, "api": api} {
		if strings.Contains(body, secret) || strings.Contains(body, "do-not-show") {
			t.Errorf("the %s shows the channel's key", where)
		}
		if !strings.Contains(body, "api.deepseek.com") {
			t.Errorf("the %s does not list the channel", where)
		}
	}
	if !strings.Contains(api, `"source":"database"`) || !strings.Contains(api, `"keys":1`) {
		t.Errorf("api = %s", api)
	}
	// Edit without a key keeps the key; disable takes the models away.
	if st, _ := c.post("/ui/channels/ds/edit", url.Values{"kind": {"openai"}, "base_url": {"https://api.deepseek.com/v1"},
		"models": {"deepseek-chat"}, "priority": {"0"}, "weight": {"1"}}); st != http.StatusSeeOther {
		t.Errorf("edit = %d", st)
	}
	if _, api := c.get("/admin/channels/ds", "Authorization", "Bearer "+adminKey); !strings.Contains(api, `"keys":1`) || strings.Contains(api, `"fast"`) {
		t.Errorf("after the edit: %s", api)
	}
	if st, _ := c.post("/ui/channels/ds/state", url.Values{"to": {"disable"}}); st != http.StatusSeeOther {
		t.Errorf("disable = %d", st)
	}
	if strings.Contains(served(), `"deepseek-chat"`) {
		t.Error("a disabled channel's model is still served")
	}
	if st, _ := c.post("/ui/channels/ds/state", url.Values{"to": {"delete"}}); st != http.StatusSeeOther {
		t.Errorf("delete = %d", st)
	}
	if st, _ := c.get("/admin/channels/ds", "Authorization", "Bearer "+adminKey); st != http.StatusNotFound {
		t.Errorf("deleted channel = %d", st)
	}
	// The file's channel cannot be changed; a bad channel is refused with its reason.
	if st, body := c.post("/ui/channels/sim/state", url.Values{"to": {"delete"}}); st != http.StatusConflict || !strings.Contains(body, "configuration file") {
		t.Errorf("delete the file's channel = %d", st)
	}
	if st, body := c.post("/ui/channels", url.Values{"name": {"bad one"}, "kind": {"openai"}, "base_url": {"https://x"},
		"models": {"m"}}); st != http.StatusBadRequest || !strings.Contains(body, "letters, digits") {
		t.Errorf("bad name = %d", st)
	}
	if !strings.Contains(served(), `"sim-chat"`) {
		t.Error("the file's channel stopped being served")
	}
}
