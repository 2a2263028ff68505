package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"text/tabwriter"
	"time"
)

func init() {
	register(command{name: "keys", summary: "create, list and delete API keys (through the admin API)", run: runKeys})
}

// adminClient calls a running gateway's admin API.
type adminClient struct {
	url, key string
	http     *http.Client
}

func adminFlags(name string, stderr io.Writer) (*adminClient, *flag.FlagSet) {
	fs := newFlags(name, stderr)
	c := &adminClient{http: &http.Client{Timeout: 30 * time.Second}}
	fs.StringVar(&c.url, "url", envOr("BAIMO_URL", "http://127.0.0.1:8080"), "gateway URL (or BAIMO_URL)")
	fs.StringVar(&c.key, "admin-key", "", "admin key (default: BAIMO_ADMIN_KEY)")
	return c, fs
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func (c *adminClient) do(ctx context.Context, method, path string, body, out any) error {
	return c.doHeader(ctx, method, path, nil, body, out)
}

// doHeader is do with extra request headers (such as Idempotency-Key). An out
// of type *[]byte receives the raw response body (CSV, or JSON passed through
// unchanged so that no number goes through float64).
func (c *adminClient) doHeader(ctx context.Context, method, path string, hdr http.Header, body, out any) error {
	if c.key == "" {
		c.key = os.Getenv("BAIMO_ADMIN_KEY")
	}
	if c.key == "" {
		return fmt.Errorf("%w: no admin key: set BAIMO_ADMIN_KEY or pass --admin-key", errUsage)
	}
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(c.url, "/")+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.key)
	req.Header.Set("Content-Type", "application/json")
	for k, vs := range hdr {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	return readAnswer(method, path, resp, out)
}

type keyJSON struct {
	ID        string     `json:"id"`
	Key       string     `json:"key"`
	Prefix    string     `json:"prefix"`
	Name      string     `json:"name"`
	TenantID  string     `json:"tenant_id"`
	Models    []string   `json:"models"`
	ExpiresAt *time.Time `json:"expires_at"`
	Disabled  bool       `json:"disabled"`
	CreatedAt time.Time  `json:"created_at"`
}

func runKeys(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return fmt.Errorf("%w: baimo keys create|list|delete|disable|enable", errUsage)
	}
	sub, args := args[0], args[1:]
	c, fs := adminFlags("keys "+sub, stderr)
	switch sub {
	case "create":
		name := fs.String("name", "", "name of the key (required)")
		models := fs.String("models", "", "comma-separated models the key may use (default: all)")
		tenant := fs.String("tenant", "", "tenant that owns the key (default: the default tenant)")
		expires := fs.String("expires", "", "expiry time, RFC 3339 (default: never)")
		asJSON := fs.Bool("json", false, "print JSON")
		if err := fs.Parse(args); err != nil {
			return fmt.Errorf("%w: %v", errUsage, err)
		}
		if *name == "" {
			return fmt.Errorf("%w: --name is required", errUsage)
		}
		body := map[string]any{"name": *name, "tenant_id": *tenant}
		if *models != "" {
			body["models"] = strings.Split(*models, ",")
		}
		if *expires != "" {
			t, err := time.Parse(time.RFC3339, *expires)
			if err != nil {
				return fmt.Errorf("%w: --expires: %v", errUsage, err)
			}
			body["expires_at"] = t
		}
		var k keyJSON
		if err := c.do(ctx, http.MethodPost, "/admin/keys", body, &k); err != nil {
			return err
		}
		if *asJSON {
			return json.NewEncoder(stdout).Encode(k)
		}
		fmt.Fprintf(stdout, "Created key %s (%s). Its secret, shown once:\n\n  %s\n\n", k.ID, k.Name, k.Key)
		return nil
	case "list":
		asJSON := fs.Bool("json", false, "print JSON")
		if err := fs.Parse(args); err != nil {
			return fmt.Errorf("%w: %v", errUsage, err)
		}
		var out struct {
			Data []keyJSON `json:"data"`
		}
		if err := c.do(ctx, http.MethodGet, "/admin/keys", nil, &out); err != nil {
			return err
		}
		if *asJSON {
			return json.NewEncoder(stdout).Encode(out.Data)
		}
		tw := tabwriter.NewWriter(stdout, 2, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tNAME\tPREFIX\tMODELS\tSTATE\tCREATED")
		for _, k := range out.Data {
			state := "active"
			if k.Disabled {
				state = "disabled"
			} else if k.ExpiresAt != nil && k.ExpiresAt.Before(time.Now()) {
				state = "expired"
			}
			models := strings.Join(k.Models, ",")
			if models == "" {
				models = "(all)"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s…\t%s\t%s\t%s\n", k.ID, k.Name, k.Prefix, models, state, when(k.CreatedAt))
		}
		return tw.Flush()
	case "delete", "disable", "enable":
		if err := fs.Parse(args); err != nil {
			return fmt.Errorf("%w: %v", errUsage, err)
		}
		if fs.NArg() != 1 {
			return fmt.Errorf("%w: baimo keys %s KEY_ID", errUsage, sub)
		}
		id := fs.Arg(0)
		method, path := http.MethodDelete, "/admin/keys/"+id
		if sub != "delete" {
			method, path = http.MethodPost, path+"/"+sub
		}
		if err := c.do(ctx, method, path, nil, nil); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s: %sd\n", id, strings.TrimSuffix(sub, "e"))
		return nil
	default:
		return fmt.Errorf("%w: unknown keys command %q", errUsage, sub)
	}
}

// readAnswer reads an API answer of at most 64 MiB into out (JSON, or the
// raw bytes when out is a *[]byte); a status of 300 or more is an error
// naming the call and the API's error message.
func readAnswer(method, path string, resp *http.Response, out any) error {
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode >= 300 {
		var e struct {
			Error struct{ Message string } `json:"error"`
		}
		if json.Unmarshal(b, &e) == nil && e.Error.Message != "" {
			return fmt.Errorf("%s %s: %d: %s", method, path, resp.StatusCode, e.Error.Message)
		}
		return fmt.Errorf("%s %s: %d", method, path, resp.StatusCode)
	}
	if raw, ok := out.(*[]byte); ok {
		*raw = b
		return nil
	}
	if out != nil {
		return json.Unmarshal(b, out)
	}
	return nil
}
