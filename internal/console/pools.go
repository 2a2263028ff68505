package console

import (
	"fmt"
	"net/http"
	"net/url"
	"time"

	"baimo/internal/batch"
	"baimo/internal/replica"
	"baimo/internal/schedule"
)

// The replica pools and batches pages read GET /admin/routing (its Pools)
// and GET /admin/batches as they are.

func (c *Console) poolRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /ui/pools", c.requireAdmin(c.pools))
	mux.HandleFunc("GET /ui/batches", c.requireAdmin(c.batches))
	mux.HandleFunc("POST /ui/batches/{id}/cancel", c.requireAdmin(c.batchCancel))
}

type poolsData struct {
	Pools []poolView
	At    time.Time
}

// poolView is one pool of GET /admin/routing.
type poolView struct{ replica.Stats }

// classRow is one traffic class of a pool's queue.
type classRow struct {
	Name string
	schedule.ClassStats
}

// AvgWait is the class's mean queueing time, 0 when none waited.
func (r classRow) AvgWait() time.Duration {
	if r.WaitCount == 0 {
		return 0
	}
	return r.WaitSum / time.Duration(r.WaitCount)
}

// ClassRows are the pool's queue counters by class, in priority order.
func (p poolView) ClassRows() []classRow {
	out := make([]classRow, len(p.Classes))
	for i, cs := range p.Classes {
		out[i] = classRow{Name: schedule.Class(i).String(), ClassStats: cs}
	}
	return out
}

// Waiting is how many requests the pool's queue holds now.
func (p poolView) Waiting() int {
	n := 0
	for _, cs := range p.Classes {
		n += cs.Waiting
	}
	return n
}

// replicaRow formats a replica's figures.
type replicaRow struct{ replica.ReplicaStats }

// ReplicaRows are the pool's replicas.
func (p poolView) ReplicaRows() []replicaRow {
	out := make([]replicaRow, len(p.Replicas))
	for i, r := range p.Replicas {
		out[i] = replicaRow{r}
	}
	return out
}

// IndexHit is the share of prompt tokens the gateway's prefix index expected
// in the replica's cache ("" before any prompt).
func (r replicaRow) IndexHit() string { return formatPct(r.Matched, r.Prompt, 1) }

// EngineHit is the replica's own prefix cache hit rate since it started, as
// its metrics count it ("" when it reports none). A display figure only.
func (r replicaRow) EngineHit() string {
	if r.Metrics == nil || r.Metrics.Queries <= 0 {
		return ""
	}
	return fmt.Sprintf("%.1f%%", 100*r.Metrics.Hits/r.Metrics.Queries)
}

// KV is the replica's KV cache use as a percentage ("" when unknown).
func (r replicaRow) KV() string {
	if r.Metrics == nil || !r.Metrics.Healthy {
		return ""
	}
	return fmt.Sprintf("%.0f%%", 100*r.Load.KVUsage)
}

func (c *Console) pools(w http.ResponseWriter, r *http.Request, s *session) {
	p := c.newPage(w, r, "pools", "nav_pools", nil)
	var rt struct {
		At    time.Time
		Pools []replica.Stats
	}
	if e := c.call(r, "GET", "/admin/routing", nil, &rt); e != nil {
		c.failPage(w, r, p, e)
		return
	}
	d := &poolsData{At: rt.At}
	for _, st := range rt.Pools {
		d.Pools = append(d.Pools, poolView{st})
	}
	p.Data = d
	c.write(w, r, http.StatusOK, p)
}

// batchJSON is a batch of GET /admin/batches.
type batchJSON struct {
	ID            string `json:"id"`
	API           string `json:"api"`
	TenantID      string `json:"tenant_id"`
	KeyID         string `json:"key_id"`
	Endpoint      string `json:"endpoint"`
	Status        string `json:"status"`
	CreatedAt     int64  `json:"created_at"`
	ExpiresAt     int64  `json:"expires_at"`
	RequestCounts struct {
		Total     int `json:"total"`
		Completed int `json:"completed"`
		Failed    int `json:"failed"`
	} `json:"request_counts"`
	Baimo struct {
		Mode     string       `json:"mode"`
		Cost     string       `json:"cost"`
		Currency string       `json:"currency"`
		Reserved string       `json:"reserved"`
		Lines    batch.Counts `json:"lines"`
	} `json:"baimo"`
	Runner struct {
		Owner string `json:"owner"`
		Epoch int64  `json:"epoch"`
	} `json:"runner"`
}

// Done is how many lines have ended (answered, failed, cancelled or
// expired).
func (b batchJSON) Done() int { return b.Baimo.Lines.Total - b.Baimo.Lines.Pending }

// Progress is Done as a percentage of the lines ("" for none).
func (b batchJSON) Progress() string {
	return formatPct(int64(b.Done()), int64(b.Baimo.Lines.Total), 0)
}

// Succeeded is how many lines got a 2xx answer.
func (b batchJSON) Succeeded() int64 { return int64(b.Baimo.Lines.Succeeded) }

// Failed is how many lines got an error answer or expired.
func (b batchJSON) Failed() int64 { return int64(b.Baimo.Lines.Errored + b.Baimo.Lines.Expired) }

// Created is when the batch was created.
func (b batchJSON) Created() time.Time { return time.Unix(b.CreatedAt, 0) }

// Running says whether the batch may still be cancelled.
func (b batchJSON) Running() bool { return b.Status == "validating" || b.Status == "in_progress" }

type batchesData struct {
	Batches []batchJSON
	Off     bool   // batches are off on this gateway
	Tenant  string // the filter
	Next    string // the query of the next page, "" at the end
}

// batchPage is how many batches a page shows.
const batchPage = 50

func (c *Console) batches(w http.ResponseWriter, r *http.Request, s *session) {
	c.batchesWith(w, r, http.StatusOK, "")
}

func (c *Console) batchesWith(w http.ResponseWriter, r *http.Request, status int, errMsg string) {
	p := c.newPage(w, r, "batches", "nav_batches", nil)
	p.Error = errMsg
	in := r.URL.Query()
	d := &batchesData{Tenant: in.Get("tenant_id")}
	p.Data = d
	q := url.Values{"limit": {fmt.Sprint(batchPage)}}
	for _, k := range []string{"tenant_id", "after"} {
		if v := in.Get(k); v != "" {
			q.Set(k, v)
		}
	}
	var list struct {
		Data    []batchJSON `json:"data"`
		HasMore bool        `json:"has_more"`
		LastID  string      `json:"last_id"`
	}
	switch e := c.call(r, "GET", apiPath("/admin/batches", q), nil, &list); {
	case e != nil && e.Status == http.StatusNotFound && in.Get("after") == "":
		d.Off = true // the admin API has no batches: they are turned off
	case e != nil:
		c.failPage(w, r, p, e)
		return
	}
	d.Batches = list.Data
	if list.HasMore && list.LastID != "" {
		next := url.Values{"after": {list.LastID}}
		if d.Tenant != "" {
			next.Set("tenant_id", d.Tenant)
		}
		d.Next = next.Encode()
	}
	c.write(w, r, status, p)
}

func (c *Console) batchCancel(w http.ResponseWriter, r *http.Request, s *session) {
	if e := c.call(r, "POST", "/admin/batches/"+url.PathEscape(r.PathValue("id"))+"/cancel", nil, nil); e != nil {
		c.batchesWith(w, r, e.Status, e.Message)
		return
	}
	redirectDone(w, r, "/ui/batches", "batch_cancelled")
}
