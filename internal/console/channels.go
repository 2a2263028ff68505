package console

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"baimo/internal/channels"
	"baimo/internal/route"
)

func (c *Console) channelRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /ui/channels", c.requireAdmin(c.channels))
	mux.HandleFunc("POST /ui/channels/{channel}/reset", c.requireAdmin(c.channelAction))
	mux.HandleFunc("POST /ui/channels/{channel}/keys/{key}/unpark", c.requireAdmin(c.channelAction))
	mux.HandleFunc("POST /ui/channels/{channel}/probe", c.requireAdmin(c.channelProbe))
	mux.HandleFunc("POST /ui/channels", c.requireAdmin(c.channelCreate))
	mux.HandleFunc("POST /ui/channels/{channel}/edit", c.requireAdmin(c.channelEdit))
	mux.HandleFunc("POST /ui/channels/{channel}/state", c.requireAdmin(c.channelState))
}

// routingJSON is GET /admin/routing.
type routingJSON struct {
	route.Snapshot
	Probes []route.ProbeStatus
}

type channelRow struct {
	Info   channels.View
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
	Managed  bool       // channels can be added here
	Check    *checkJSON // the probe just asked for, if any
}

// checkJSON is POST /admin/routing/channels/{channel}/probe.
type checkJSON struct {
	Channel   string    `json:"channel"`
	Key       string    `json:"key"`
	OK        bool      `json:"ok"`
	Status    int       `json:"status"`
	Result    string    `json:"result"`
	LatencyMs int64     `json:"latency_ms"`
	At        time.Time `json:"at"`
	KeyParked bool      `json:"key_parked"`
}

// ModelList shows a channel's models, "public → upstream" where they differ.
func (r channelRow) ModelList() string {
	names := make([]string, 0, len(r.Info.Models))
	for pub, up := range r.Info.Models {
		if pub == up {
			names = append(names, pub)
		} else {
			names = append(names, pub+"="+up)
		}
	}
	slices.Sort(names)
	return strings.Join(names, ", ")
}

func (c *Console) channels(w http.ResponseWriter, r *http.Request, s *session) {
	c.channelsWith(w, r, http.StatusOK, "")
}

func (c *Console) channelsWith(w http.ResponseWriter, r *http.Request, status int, errMsg string) {
	c.channelsPage(w, r, status, errMsg, nil)
}

// channelProbe checks a channel now (with the key of the form, or the
// first not parked) and shows the channels with the answer on top.
func (c *Console) channelProbe(w http.ResponseWriter, r *http.Request, s *session) {
	q := url.Values{}
	if k := r.PostFormValue("key"); k != "" {
		q.Set("key", k)
	}
	var ck checkJSON
	if e := c.call(r, "POST", apiPath("/admin/routing/channels/"+url.PathEscape(r.PathValue("channel"))+"/probe", q), nil, &ck); e != nil {
		c.channelsWith(w, r, e.Status, e.Message)
		return
	}
	c.channelsPage(w, r, http.StatusOK, "", &ck)
}

func (c *Console) channelsPage(w http.ResponseWriter, r *http.Request, status int, errMsg string, ck *checkJSON) {
	p := c.newPage(w, r, "channels", "nav_channels", nil)
	d := &channelsData{Check: ck}
	p.Data = d
	p.Error = errMsg
	var rt routingJSON
	if e := c.call(r, "GET", "/admin/routing", nil, &rt); e != nil {
		c.failPage(w, r, p, e)
		return
	}
	var list struct {
		Data []channels.View `json:"data"`
	}
	if c.opt.Channels != nil {
		if e := c.call(r, "GET", "/admin/channels", nil, &list); e != nil {
			c.failPage(w, r, p, e)
			return
		}
	}
	d.Managed = c.opt.Channels != nil
	var spend reportView
	q := url.Values{"range": {"24h"}, "group_by": {"channel"}, "tz": {p.Zone.String()}}
	if e := c.call(r, "GET", apiPath("/admin/reports/usage", q), nil, &spend); e != nil {
		c.failPage(w, r, p, e)
		return
	}
	d.At = rt.At
	rows := map[string]*channelRow{}
	var order []string
	for _, info := range list.Data {
		rows[info.Name] = &channelRow{Info: info}
		order = append(order, info.Name)
	}
	for i := range rt.Channels {
		st := &rt.Channels[i]
		row := rows[st.ID]
		if row == nil {
			row = &channelRow{Info: channels.View{Name: st.ID, Source: "config", Active: true}}
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

// channelSpec reads the channel form into a spec: models as "public" or
// "public=upstream", separated by commas or spaces; one key per line.
func channelSpec(r *http.Request, name string) channels.Spec {
	s := channels.Spec{Name: name, Kind: r.PostFormValue("kind"), BaseURL: strings.TrimSpace(r.PostFormValue("base_url")),
		Models: map[string]string{}, Priority: atoiDefault(r.PostFormValue("priority"), 0),
		Weight: atoiDefault(r.PostFormValue("weight"), 0)}
	for _, m := range strings.FieldsFunc(r.PostFormValue("models"), func(r rune) bool { return r == ',' || r == ' ' || r == '\n' || r == '\r' }) {
		pub, up, ok := strings.Cut(m, "=")
		if !ok {
			up = pub
		}
		s.Models[strings.TrimSpace(pub)] = strings.TrimSpace(up)
	}
	for _, k := range strings.Split(r.PostFormValue("api_key"), "\n") {
		if k = strings.TrimSpace(k); k != "" {
			s.APIKeys = append(s.APIKeys, k)
		}
	}
	return s
}

func (c *Console) channelCreate(w http.ResponseWriter, r *http.Request, s *session) {
	spec := channelSpec(r, strings.TrimSpace(r.PostFormValue("name")))
	if e := c.call(r, "POST", "/admin/channels", spec, nil); e != nil {
		c.channelsWith(w, r, e.Status, e.Message)
		return
	}
	redirectDone(w, r, "/ui/channels", "channel_created")
}

func (c *Console) channelEdit(w http.ResponseWriter, r *http.Request, s *session) {
	name := r.PathValue("channel")
	spec := channelSpec(r, name)
	if len(spec.APIKeys) == 0 {
		spec.APIKeys = nil // keep the channel's keys
	}
	if e := c.call(r, "PUT", "/admin/channels/"+url.PathEscape(name), spec, nil); e != nil {
		c.channelsWith(w, r, e.Status, e.Message)
		return
	}
	redirectDone(w, r, "/ui/channels", "channel_saved")
}

func (c *Console) channelState(w http.ResponseWriter, r *http.Request, s *session) {
	name := url.PathEscape(r.PathValue("channel"))
	method, path, done := "POST", "/admin/channels/"+name+"/disable", "channel_disabled"
	switch r.PostFormValue("to") {
	case "enable":
		path, done = "/admin/channels/"+name+"/enable", "channel_enabled"
	case "delete":
		method, path, done = "DELETE", "/admin/channels/"+name, "channel_deleted"
	}
	if e := c.call(r, method, path, nil, nil); e != nil {
		c.channelsWith(w, r, e.Status, e.Message)
		return
	}
	redirectDone(w, r, "/ui/channels", done)
}
