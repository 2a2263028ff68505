package console_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
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

// TestChannelProbeAndUnpark: the probe asks the vendor's model list with one
// of a channel's keys and shows the answer and its latency without changing
// any state; unpark puts a parked key back. Both through the admin API and
// the channels page.
func TestChannelProbeAndUnpark(t *testing.T) {
	e := newEnv(t)
	const good, bad = "sk-up-good-0000000000", "sk-up-bad-00000000000"
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Method != http.MethodGet || r.URL.Path != "/v1/models":
			http.NotFound(w, r)
		case r.Header.Get("Authorization") == "Bearer "+good:
			_, _ = w.Write([]byte(`{"object":"list","data":[]}`))
		default:
			w.WriteHeader(http.StatusUnauthorized)
		}
	}))
	t.Cleanup(up.Close)
	c := e.client(t, "en")
	c.signIn(adminKey)
	c.get("/ui/channels")
	if st, loc := c.post("/ui/channels", url.Values{"name": {"up"}, "kind": {"openai"}, "base_url": {up.URL + "/v1"},
		"models": {"up-model"}, "api_key": {bad + "\n" + good}}); st != http.StatusSeeOther {
		t.Fatalf("create = %d %s", st, loc)
	}
	admin := func(method, path string) (int, map[string]any) {
		t.Helper()
		st, body := c.do(method, path, nil, "Authorization", "Bearer "+adminKey)
		var v map[string]any
		if err := json.Unmarshal([]byte(body), &v); err != nil {
			t.Fatalf("%s %s = %d %s", method, path, st, body)
		}
		if strings.Contains(body, good) || strings.Contains(body, bad) {
			t.Errorf("%s %s shows an upstream key: %s", method, path, body)
		}
		return st, v
	}
	parked := func(key string) bool {
		for _, ch := range e.gw.Router().Snapshot().Channels {
			for _, k := range ch.Keys {
				if ch.ID == "up" && k.ID == key {
					return k.Parked
				}
			}
		}
		t.Fatalf("no key up/%s", key)
		return false
	}
	for _, tt := range []struct {
		path   string
		status int
		want   map[string]any
	}{
		{"/admin/routing/channels/up/probe?key=k0", 200, map[string]any{"key": "k0", "ok": false, "status": 401.0, "result": "http_401", "key_parked": false}},
		{"/admin/routing/channels/up/probe?key=k1", 200, map[string]any{"key": "k1", "ok": true, "status": 200.0, "result": "ok"}},
		{"/admin/routing/channels/up/probe", 200, map[string]any{"key": "k0", "result": "http_401"}},
		{"/admin/routing/channels/sim/probe", 200, map[string]any{"key": "k0", "ok": false, "status": nil, "result": "unreachable"}},
		{"/admin/routing/channels/up/probe?key=k7", 404, nil},
		{"/admin/routing/channels/nope/probe", 404, nil},
	} {
		st, v := admin("POST", tt.path)
		if st != tt.status {
			t.Errorf("POST %s = %d %v, want %d", tt.path, st, v, tt.status)
			continue
		}
		for k, want := range tt.want {
			if v[k] != want {
				t.Errorf("POST %s: %s = %v, want %v (%v)", tt.path, k, v[k], want, v)
			}
		}
		if st == 200 {
			if ms, ok := v["latency_ms"].(float64); !ok || ms < 0 {
				t.Errorf("POST %s: latency_ms = %v", tt.path, v["latency_ms"])
			}
		}
	}
	if parked("k0") || parked("k1") {
		t.Fatal("a probe parked a key")
	}

	// A key parked: the probe without a key uses the other, and says so of
	// the parked one when asked; the admin API unparks it.
	if err := e.gw.Router().Park("up", "k1", "key:http_401"); err != nil {
		t.Fatal(err)
	}
	if _, v := admin("POST", "/admin/routing/channels/up/probe?key=k1"); v["ok"] != true || v["key_parked"] != true {
		t.Errorf("probe of the parked key = %v", v)
	}
	if !parked("k1") {
		t.Fatal("a probe unparked a key")
	}
	if st, v := admin("POST", "/admin/routing/channels/up/keys/k1/unpark"); st != 200 || v["parked"] != false {
		t.Errorf("unpark = %d %v", st, v)
	}
	if parked("k1") {
		t.Error("the admin API's unpark left the key parked")
	}
	if st, _ := admin("POST", "/admin/routing/channels/up/keys/k7/unpark"); st != http.StatusNotFound {
		t.Errorf("unpark of an unknown key = %d", st)
	}

	// The page: a probe button on each channel and key, an unpark button on
	// the parked key, the probe's answer on top.
	if err := e.gw.Router().Park("up", "k1", "key:http_401"); err != nil {
		t.Fatal(err)
	}
	_, page := c.get("/ui/channels")
	for _, want := range []string{`action="/ui/channels/up/probe"`, `name="key" value="k0"`, `action="/ui/channels/up/keys/k1/unpark"`} {
		if !strings.Contains(page, want) {
			t.Errorf("the channels page has no %s", want)
		}
	}
	if strings.Contains(page, `action="/ui/channels/up/keys/k0/unpark"`) {
		t.Error("an unpark button on a key that is not parked")
	}
	st, body := c.post("/ui/channels/up/probe", url.Values{"key": {"k0"}})
	if st != http.StatusOK || !strings.Contains(body, `id="probe-result"`) || !strings.Contains(body, "<strong>http_401</strong> (HTTP 401)") ||
		!strings.Contains(body, "ms") {
		t.Errorf("probe from the page = %d %s", st, excerpt(body))
	}
	if st, body := c.post("/ui/channels/up/probe", url.Values{"key": {"k7"}}); st != http.StatusNotFound || !strings.Contains(body, `class="flash error"`) {
		t.Errorf("probe of an unknown key from the page = %d %s", st, excerpt(body))
	}
	if st, loc := c.post("/ui/channels/up/keys/k1/unpark", nil); st != http.StatusSeeOther || loc != "/ui/channels?done=key_unparked" {
		t.Errorf("unpark from the page = %d %s", st, loc)
	}
	if parked("k1") {
		t.Error("the page's unpark left the key parked")
	}
	if m := e.con.Missing(); len(m) > 0 {
		t.Errorf("messages without a translation: %v", m)
	}
}
