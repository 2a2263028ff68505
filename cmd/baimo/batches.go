package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"
)

func init() {
	register(command{name: "batches", summary: "create, watch, cancel and fetch batches (the Batches API)", run: runBatches})
}

const batchesUsage = `usage:
  baimo batches create FILE --endpoint /v1/chat/completions [--mode auto|realtime|offpeak|vendor] [--metadata K=V]... [--wait] [--json]
  baimo batches list [--limit N] [--json]
  baimo batches get ID [--json]
  baimo batches cancel ID [--json]
  baimo batches results ID [--errors] [--output FILE]

FILE is OpenAI's batch input: one JSON line per request, {"custom_id", "method": "POST", "url", "body"}; the
endpoint is /v1/chat/completions, /v1/completions, /v1/embeddings or /v1/responses. --wait follows the batch
until it ends with a progress bar (lines done, failed, cost so far, estimated time left) on stderr.

The commands talk to a running gateway: --url (or BAIMO_URL; default http://127.0.0.1:8080) with an API key
(--key or BAIMO_API_KEY), whose tenant owns the batch. Without an API key, list, get, cancel and results use the
admin API (--admin-key or BAIMO_ADMIN_KEY) and see every tenant's batches. results writes the output file (or,
with --errors, the error file) to stdout or --output.`

func runBatches(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return dispatch(ctx, "batches", batchesUsage, map[string]subcommand{
		"create": batchesCreate, "list": batchesList, "get": batchesGet, "cancel": batchesCancel, "results": batchesResults,
	}, args, stdout, stderr)
}

// batchClient calls the Batches API with an API key, or the admin API.
type batchClient struct {
	admin *adminClient
	key   string
}

func batchSub(name, synopsis string, stderr io.Writer) (*batchClient, *flag.FlagSet) {
	c, fs := adminSub(name, synopsis, stderr)
	bc := &batchClient{admin: c}
	fs.StringVar(&bc.key, "key", "", "API key (default: BAIMO_API_KEY)")
	c.http.Timeout = 0 // uploads and downloads of large files; requests carry their own deadlines
	return bc, fs
}

// apiKey returns the API key, or "" to use the admin API.
func (c *batchClient) apiKey() string {
	if c.key == "" {
		c.key = os.Getenv("BAIMO_API_KEY")
	}
	return c.key
}

// path is the API path of a batch route: /v1/batches... with an API key,
// /admin/batches... without.
func (c *batchClient) path(rest string) string {
	if c.apiKey() != "" {
		return "/v1/batches" + rest
	}
	return "/admin/batches" + rest
}

// do calls the API; with an API key it authenticates with it.
func (c *batchClient) do(ctx context.Context, method, path string, body io.Reader, contentType string, out any) error {
	if c.apiKey() == "" {
		if body != nil {
			return fmt.Errorf("%w: this command needs an API key: set BAIMO_API_KEY or pass --key", errUsage)
		}
		return c.admin.do(ctx, method, path, nil, out)
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(c.admin.url, "/")+path, body)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.key)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := c.admin.http.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	if w, ok := out.(io.Writer); ok && resp.StatusCode < 300 {
		_, err := io.Copy(w, resp.Body)
		return err
	}
	return readAnswer(method, path, resp, out)
}

// batchJSON is what the commands read of a batch.
type batchJSON struct {
	ID            string            `json:"id"`
	Endpoint      string            `json:"endpoint"`
	Status        string            `json:"status"`
	CreatedAt     int64             `json:"created_at"`
	InProgressAt  *int64            `json:"in_progress_at"`
	OutputFileID  *string           `json:"output_file_id"`
	ErrorFileID   *string           `json:"error_file_id"`
	TenantID      string            `json:"tenant_id"`
	Metadata      map[string]string `json:"metadata"`
	RequestCounts struct {
		Total     int `json:"total"`
		Completed int `json:"completed"`
		Failed    int `json:"failed"`
	} `json:"request_counts"`
	Errors *struct {
		Data []struct {
			Code    string `json:"code"`
			Message string `json:"message"`
			Param   string `json:"param"`
			Line    int    `json:"line"`
		} `json:"data"`
		Total int `json:"total"`
	} `json:"errors"`
	Baimo struct {
		Mode     string `json:"mode"`
		Cost     string `json:"cost"`
		Currency string `json:"currency"`
		Reserved string `json:"reserved"`
		Lines    struct {
			Total     int `json:"total"`
			Pending   int `json:"pending"`
			Succeeded int `json:"succeeded"`
			Errored   int `json:"errored"`
			Cancelled int `json:"cancelled"`
			Expired   int `json:"expired"`
		} `json:"lines"`
	} `json:"baimo"`
}

func (b *batchJSON) ended() bool {
	switch b.Status {
	case "completed", "failed", "expired", "cancelled":
		return true
	}
	return false
}

// metadataFlags collects repeated --metadata K=V.
type metadataFlags map[string]string

func (m metadataFlags) String() string { return "" }

func (m metadataFlags) Set(v string) error {
	k, val, ok := strings.Cut(v, "=")
	if !ok || k == "" {
		return fmt.Errorf("metadata %q: want KEY=VALUE", v)
	}
	m[k] = val
	return nil
}

func batchesCreate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	const synopsis = "batches create FILE --endpoint ENDPOINT [--mode MODE] [--metadata K=V]... [--wait] [--json]"
	c, fs := batchSub("batches create", synopsis, stderr)
	endpoint := fs.String("endpoint", "", "the endpoint every line calls, e.g. /v1/chat/completions")
	mode := fs.String("mode", "", "where the lines run: auto, realtime, offpeak or vendor (default: the operator's choice)")
	meta := metadataFlags{}
	fs.Var(meta, "metadata", "KEY=VALUE to attach to the batch (repeatable)")
	wait := fs.Bool("wait", false, "follow the batch until it ends, with a progress bar on stderr")
	asJSON := fs.Bool("json", false, "print the batch as JSON")
	pos, err := parseArgs(fs, args, 1, synopsis)
	if err != nil {
		return err
	}
	if *endpoint == "" {
		return fmt.Errorf("%w: --endpoint is required", errUsage)
	}
	if *mode != "" {
		meta["baimo_mode"] = *mode
	}
	if c.apiKey() == "" {
		return fmt.Errorf("%w: a batch belongs to an API key's tenant: set BAIMO_API_KEY or pass --key", errUsage)
	}
	fileID, err := c.upload(ctx, pos[0])
	if err != nil {
		return err
	}
	body, _ := json.Marshal(map[string]any{"input_file_id": fileID, "endpoint": *endpoint, "completion_window": "24h", "metadata": meta})
	var raw []byte
	if err := c.do(ctx, "POST", "/v1/batches", strings.NewReader(string(body)), "application/json", &raw); err != nil {
		return err
	}
	var b batchJSON
	if err := json.Unmarshal(raw, &b); err != nil {
		return err
	}
	if !*wait {
		if *asJSON {
			return writeRaw(stdout, raw)
		}
		return printBatch(stdout, &b)
	}
	fmt.Fprintf(stderr, "batch %s: %d lines, %s reserved\n", b.ID, b.RequestCounts.Total, withCurrency(b.Baimo.Reserved, b.Baimo.Currency))
	if raw, err = c.follow(ctx, &b, stderr); err != nil {
		return err
	}
	if *asJSON {
		return writeRaw(stdout, raw)
	}
	return printBatch(stdout, &b)
}

// upload sends a file for batches and returns its id, streaming it.
func (c *batchClient) upload(ctx context.Context, path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	pr, pw := io.Pipe()
	mw := multipart.NewWriter(pw)
	go func() {
		err := mw.WriteField("purpose", "batch")
		if err == nil {
			var part io.Writer
			if part, err = mw.CreateFormFile("file", filepath.Base(path)); err == nil {
				if _, err = io.Copy(part, f); err == nil {
					err = mw.Close()
				}
			}
		}
		pw.CloseWithError(err)
	}()
	var file struct {
		ID string `json:"id"`
	}
	err = c.do(ctx, "POST", "/v1/files", pr, mw.FormDataContentType(), &file)
	pr.CloseWithError(errors.New("done"))
	if err != nil {
		return "", err
	}
	return file.ID, nil
}

// follow polls a batch until it ends, drawing its progress on w, and
// returns the last answer.
func (c *batchClient) follow(ctx context.Context, b *batchJSON, w io.Writer) ([]byte, error) {
	bar := newProgressBar(w, time.Now())
	for {
		var raw []byte
		if err := c.do(ctx, "GET", c.path("/"+url.PathEscape(b.ID)), nil, "", &raw); err != nil {
			return nil, err
		}
		*b = batchJSON{}
		if err := json.Unmarshal(raw, b); err != nil {
			return nil, err
		}
		bar.draw(b, time.Now())
		if b.ended() {
			bar.end()
			return raw, nil
		}
		select {
		case <-ctx.Done():
			bar.end()
			return nil, ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

// withCurrency writes an amount with its currency's sign.
func withCurrency(amount, currency string) string {
	switch currency {
	case "CNY":
		return "¥" + amount
	case "USD":
		return "$" + amount
	}
	return strings.TrimSpace(amount + " " + currency)
}

// progressBar draws a batch's progress: on a terminal one line redrawn in
// place, elsewhere a line each time it moves, at most every 5 s.
type progressBar struct {
	w        io.Writer
	tty      bool
	start    time.Time
	lastLine time.Time
	last     string
	// the estimate of the time left, from the rate since the first line
	// ended after the start
	firstDone int
	firstAt   time.Time
}

func newProgressBar(w io.Writer, now time.Time) *progressBar {
	p := &progressBar{w: w, start: now, firstDone: -1}
	if f, ok := w.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			p.tty = true
		}
	}
	return p
}

// line is the progress of b as one line.
func (p *progressBar) line(b *batchJSON, now time.Time) string {
	l := b.Baimo.Lines
	total := max(b.RequestCounts.Total, l.Total)
	done := l.Succeeded + l.Errored + l.Cancelled + l.Expired
	failed := l.Errored + l.Expired
	const width = 30
	filled := 0
	if total > 0 {
		filled = done * width / total
	}
	eta := "?"
	switch {
	case b.ended():
		eta = "done"
	case p.firstDone < 0:
		p.firstDone, p.firstAt = done, now
	case done > p.firstDone && now.After(p.firstAt):
		rate := float64(done-p.firstDone) / now.Sub(p.firstAt).Seconds()
		if rate > 0 {
			eta = (time.Duration(float64(total-done)/rate) * time.Second).Round(time.Second).String()
		}
	}
	return fmt.Sprintf("[%s%s] %d/%d done, %d failed, %s so far, %s left (%s)", strings.Repeat("#", filled),
		strings.Repeat("-", width-filled), done, total, failed, withCurrency(b.Baimo.Cost, b.Baimo.Currency), eta, b.Status)
}

func (p *progressBar) draw(b *batchJSON, now time.Time) {
	s := p.line(b, now)
	if p.tty {
		fmt.Fprintf(p.w, "\r\033[K%s", s)
		return
	}
	if s != p.last && (now.Sub(p.lastLine) >= 5*time.Second || b.ended()) {
		fmt.Fprintln(p.w, s)
		p.lastLine = now
	}
	p.last = s
}

func (p *progressBar) end() {
	if p.tty {
		fmt.Fprintln(p.w)
	}
}

// printBatch writes a batch for people.
func printBatch(w io.Writer, b *batchJSON) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "batch\t%s\n", b.ID)
	fmt.Fprintf(tw, "status\t%s\n", b.Status)
	fmt.Fprintf(tw, "endpoint\t%s\n", b.Endpoint)
	fmt.Fprintf(tw, "mode\t%s\n", b.Baimo.Mode)
	l := b.Baimo.Lines
	fmt.Fprintf(tw, "lines\t%d: %d succeeded, %d failed, %d cancelled, %d expired, %d to run\n", max(b.RequestCounts.Total, l.Total),
		l.Succeeded, l.Errored, l.Cancelled, l.Expired, l.Pending)
	fmt.Fprintf(tw, "cost\t%s (reserved %s)\n", withCurrency(b.Baimo.Cost, b.Baimo.Currency), withCurrency(b.Baimo.Reserved, b.Baimo.Currency))
	if b.OutputFileID != nil {
		fmt.Fprintf(tw, "output file\t%s\n", *b.OutputFileID)
	}
	if b.ErrorFileID != nil {
		fmt.Fprintf(tw, "error file\t%s\n", *b.ErrorFileID)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if b.Errors != nil {
		fmt.Fprintf(w, "\n%d bad lines:\n", b.Errors.Total)
		for _, e := range b.Errors.Data {
			fmt.Fprintf(w, "  line %d", e.Line)
			if e.Param != "" {
				fmt.Fprintf(w, " (%s)", e.Param)
			}
			fmt.Fprintf(w, ": %s\n", e.Message)
		}
	}
	return nil
}

func batchesList(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	const synopsis = "batches list [--limit N] [--json]"
	c, fs := batchSub("batches list", synopsis, stderr)
	limit := fs.Int("limit", 20, "how many, newest first (at most 100)")
	asJSON := fs.Bool("json", false, "print the list as JSON")
	if _, err := parseArgs(fs, args, 0, synopsis); err != nil {
		return err
	}
	var raw []byte
	if err := c.do(ctx, "GET", c.path(fmt.Sprintf("?limit=%d", *limit)), nil, "", &raw); err != nil {
		return err
	}
	if *asJSON {
		return writeRaw(stdout, raw)
	}
	var list struct {
		Data []batchJSON `json:"data"`
	}
	if err := json.Unmarshal(raw, &list); err != nil {
		return err
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSTATUS\tCREATED\tDONE\tFAILED\tCOST\tENDPOINT")
	for _, b := range list.Data {
		l := b.Baimo.Lines
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d/%d\t%d\t%s\t%s\n", b.ID, b.Status, time.Unix(b.CreatedAt, 0).Format(time.RFC3339),
			l.Succeeded+l.Errored+l.Cancelled+l.Expired, max(b.RequestCounts.Total, l.Total), l.Errored+l.Expired,
			withCurrency(b.Baimo.Cost, b.Baimo.Currency), b.Endpoint)
	}
	return tw.Flush()
}

func batchesGet(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return batchesOne(ctx, "GET", "", args, stdout, stderr)
}

func batchesCancel(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return batchesOne(ctx, "POST", "/cancel", args, stdout, stderr)
}

// batchesOne gets or cancels one batch.
func batchesOne(ctx context.Context, method, suffix string, args []string, stdout, stderr io.Writer) error {
	name := "get"
	if suffix != "" {
		name = "cancel"
	}
	synopsis := "batches " + name + " ID [--json]"
	c, fs := batchSub("batches "+name, synopsis, stderr)
	asJSON := fs.Bool("json", false, "print the batch as JSON")
	pos, err := parseArgs(fs, args, 1, synopsis)
	if err != nil {
		return err
	}
	var raw []byte
	if err := c.do(ctx, method, c.path("/"+url.PathEscape(pos[0])+suffix), nil, "", &raw); err != nil {
		return err
	}
	if *asJSON {
		return writeRaw(stdout, raw)
	}
	var b batchJSON
	if err := json.Unmarshal(raw, &b); err != nil {
		return err
	}
	return printBatch(stdout, &b)
}

func batchesResults(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	const synopsis = "batches results ID [--errors] [--output FILE]"
	c, fs := batchSub("batches results", synopsis, stderr)
	errorsFile := fs.Bool("errors", false, "the error file instead of the output file")
	output := fs.String("output", "", "write to FILE instead of stdout")
	pos, err := parseArgs(fs, args, 1, synopsis)
	if err != nil {
		return err
	}
	var b batchJSON
	if err := c.do(ctx, "GET", c.path("/"+url.PathEscape(pos[0])), nil, "", &b); err != nil {
		return err
	}
	id := b.OutputFileID
	if *errorsFile {
		id = b.ErrorFileID
	}
	if !b.ended() {
		return fmt.Errorf("batch %s is %s: its results are not ready", b.ID, b.Status)
	}
	if id == nil {
		return fmt.Errorf("batch %s has no %s", b.ID, map[bool]string{false: "output file", true: "error file"}[*errorsFile])
	}
	w := stdout
	if *output != "" {
		f, err := os.Create(*output)
		if err != nil {
			return err
		}
		defer f.Close()
		w = f
	}
	path := "/v1/files/" + url.PathEscape(*id) + "/content"
	if c.apiKey() == "" {
		path = c.path("/" + url.PathEscape(b.ID) + "/results")
		if *errorsFile {
			path += "?errors=true"
		}
		var raw []byte
		if err := c.admin.do(ctx, "GET", path, nil, &raw); err != nil {
			return err
		}
		_, err := w.Write(raw)
		return err
	}
	return c.do(ctx, "GET", path, nil, "", w)
}
