package console

import (
	"net/http"
	"net/url"
	"slices"
	"time"

	"baimo/internal/route"
)

// ModelNames returns the public names of a channel's model map, sorted.
func ModelNames(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// SiteOf returns the scheme and host of a base URL: what the console shows
// of an upstream address (its path and any credentials in it are left out).
func SiteOf(base string) string {
	u, err := url.Parse(base)
	if err != nil || u.Host == "" {
		return ""
	}
	return u.Scheme + "://" + u.Host
}

func (c *Console) channelRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /ui/channels", c.requireAdmin(c.channels))
	mux.HandleFunc("POST /ui/channels/{channel}/reset", c.requireAdmin(c.channelAction))
	mux.HandleFunc("POST /ui/channels/{channel}/keys/{key}/unpark", c.requireAdmin(c.channelAction))
}

// routingJSON is GET /admin/routing.
type routingJSON struct {
	route.Snapshot
	Probes []route.ProbeStatus
}

type channelRow struct {
	Info   ChannelInfo
	State  *route.ChannelState
	Models []modelLatency // this channel's latency per model
	Usage  *groupView
	Probes []route.ProbeStatus
}

// Parked counts the channel's parked keys.
func (r channelRow) Parked() int {
	n := 0
	if r.State != nil {
		for _, k := range r.State.Keys {
			if k.Parked {
				n++
			}
		}
	}
	return n
}

// modelLatency is one model's latency averages on a channel.
type modelLatency struct {
	Model  string
	Policy string
	route.MemberState
}

type channelsData struct {
	Channels []channelRow
	At       time.Time
}

func (c *Console) channels(w http.ResponseWriter, r *http.Request, s *session) {
	c.channelsWith(w, r, http.StatusOK, "")
}

func (c *Console) channelsWith(w http.ResponseWriter, r *http.Request, status int, errMsg string) {
	p := c.newPage(w, r, "channels", "nav_channels", nil)
	d := &channelsData{}
	p.Data = d
	p.Error = errMsg
	var rt routingJSON
	if e := c.call(r, "GET", "/admin/routing", nil, &rt); e != nil {
		c.failPage(w, r, p, e)
		return
	}
	var spend reportView
	q := url.Values{"range": {"24h"}, "group_by": {"channel"}, "tz": {p.Zone.String()}}
	if e := c.call(r, "GET", apiPath("/admin/reports/usage", q), nil, &spend); e != nil {
		c.failPage(w, r, p, e)
		return
	}
	d.At = rt.At
	rows := map[string]*channelRow{}
	var order []string
	for _, info := range c.opt.Channels {
		rows[info.Name] = &channelRow{Info: info}
		order = append(order, info.Name)
	}
	for i := range rt.Channels {
		st := &rt.Channels[i]
		row := rows[st.ID]
		if row == nil {
			row = &channelRow{Info: ChannelInfo{Name: st.ID, Source: "config"}}
			rows[st.ID] = row
			order = append(order, st.ID)
		}
		row.State = st
	}
	for _, m := range rt.Models {
		for _, mem := range m.Channels {
			if row := rows[mem.Channel]; row != nil {
				row.Models = append(row.Models, modelLatency{Model: m.Name, Policy: string(m.Policy), MemberState: mem})
			}
		}
	}
	for i := range spend.Groups {
		if row := rows[spend.Groups[i].Group]; row != nil {
			row.Usage = &spend.Groups[i]
		}
	}
	for _, pr := range rt.Probes {
		if row := rows[pr.Channel]; row != nil {
			row.Probes = append(row.Probes, pr)
		}
	}
	for _, name := range order {
		d.Channels = append(d.Channels, *rows[name])
	}
	c.write(w, r, status, p)
}

func (c *Console) channelAction(w http.ResponseWriter, r *http.Request, s *session) {
	ch := url.PathEscape(r.PathValue("channel"))
	path := "/admin/routing/channels/" + ch + "/reset"
	done := "channel_reset"
	if key := r.PathValue("key"); key != "" {
		path = "/admin/routing/channels/" + ch + "/keys/" + url.PathEscape(key) + "/unpark"
		done = "key_unparked"
	}
	if e := c.call(r, "POST", path, nil, nil); e != nil {
		c.channelsWith(w, r, e.Status, e.Message)
		return
	}
	redirectDone(w, r, "/ui/channels", done)
}
