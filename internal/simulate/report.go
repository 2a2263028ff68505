package simulate

import (
	"encoding/csv"
	"errors"
	"fmt"
	"html"
	"io"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"

	"baimo/internal/schedule"
)

func ftoa(x float64, prec int) string { return strconv.FormatFloat(x, 'f', prec, 64) }

var runHeader = []string{"trace", "policy", "replicas", "nodes", "seed", "rate", "req_per_s", "online", "served", "shed", "vendor",
	"slo_attainment", "ttft_p50_s", "ttft_p90_s", "ttft_p99_s", "tpot_p50_ms", "tpot_p90_ms", "tpot_p99_ms",
	"throughput_tok_s", "prefix_hit_rate", "index_hit_rate", "utilisation", "cost_per_m_slo_tokens", "windows_met",
	"preemptions", "batch", "batch_done", "batch_met_deadline", "online_tokens_window", "batch_tokens_window", "window_s"}

func runRow(s Summary) []string {
	ms := func(d interface{ Microseconds() int64 }) string { return ftoa(float64(d.Microseconds())/1000, 2) }
	return []string{s.Trace, s.Policy, strconv.Itoa(s.Replicas), strconv.Itoa(s.Nodes), strconv.FormatUint(s.Seed, 10),
		ftoa(s.Rate, 4), ftoa(s.ReqPerS, 3), strconv.Itoa(s.Online), strconv.Itoa(s.Served), strconv.Itoa(s.Shed), strconv.Itoa(s.Vendor),
		ftoa(s.Attainment, 4), ftoa(s.TTFT[0].Seconds(), 3), ftoa(s.TTFT[1].Seconds(), 3), ftoa(s.TTFT[2].Seconds(), 3),
		ms(s.TPOT[0]), ms(s.TPOT[1]), ms(s.TPOT[2]),
		ftoa(s.Throughput, 1), ftoa(s.PrefixHitRate, 4), ftoa(s.IndexHitRate, 4), ftoa(s.Utilisation, 4), ftoa(s.CostPerMSLO, 3),
		ftoa(s.WindowsMet, 4), strconv.FormatInt(s.Preemptions, 10), strconv.Itoa(s.Batch), strconv.Itoa(s.BatchDone),
		strconv.Itoa(s.BatchMetDeadline), strconv.FormatInt(s.OnlineTokensWindow, 10), strconv.FormatInt(s.BatchTokensWindow, 10),
		ftoa(s.Window.Seconds(), 1)}
}

// WriteRunsCSV writes one row per run.
func WriteRunsCSV(w io.Writer, runs []Summary) error {
	cw := csv.NewWriter(w)
	_ = cw.Write(runHeader)
	for _, s := range runs {
		_ = cw.Write(runRow(s))
	}
	cw.Flush()
	return cw.Error()
}

// WriteGoodputCSV writes one row per policy and seed: the goodput and the
// figures of the run at that rate.
func WriteGoodputCSV(w io.Writer, gs []Goodput) error {
	cw := csv.NewWriter(w)
	_ = cw.Write(append([]string{"goodput_req_per_s"}, runHeader...))
	for _, g := range gs {
		row := runRow(g.Summary)
		row[1], row[4], row[5] = g.Policy, strconv.FormatUint(g.Seed, 10), ftoa(g.Rate, 4)
		_ = cw.Write(append([]string{ftoa(g.ReqPerS, 3)}, row...))
	}
	cw.Flush()
	return cw.Error()
}

// GoodputStats is a policy's goodput over seeds.
type GoodputStats struct {
	Policy         string
	Mean, Min, Max float64
	Seeds          int
}

// GoodputByPolicy averages goodput over seeds, in the order policies first
// appear.
func GoodputByPolicy(gs []Goodput) []GoodputStats {
	var order []string
	m := map[string]*GoodputStats{}
	for _, g := range gs {
		st := m[g.Policy]
		if st == nil {
			st = &GoodputStats{Policy: g.Policy, Min: math.Inf(1)}
			m[g.Policy] = st
			order = append(order, g.Policy)
		}
		st.Mean += g.ReqPerS
		st.Min = min(st.Min, g.ReqPerS)
		st.Max = max(st.Max, g.ReqPerS)
		st.Seeds++
	}
	out := make([]GoodputStats, 0, len(order))
	for _, p := range order {
		st := m[p]
		st.Mean /= float64(st.Seeds)
		out = append(out, *st)
	}
	return out
}

// series is one line of a chart.
type series struct {
	name string
	x, y []float64
}

var palette = []string{"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"}

// colour gives each policy the same colour in every chart: the baselines
// and the prefix-aware policies in schedule.PolicyNames order.
func colour(policy string, fallback int) string {
	for i, p := range schedule.PolicyNames {
		if p == policy {
			return palette[i%len(palette)]
		}
	}
	return palette[(len(schedule.PolicyNames)+fallback)%len(palette)]
}

// curves averages a metric over seeds at each rate multiplier, per policy,
// against the mean offered request rate.
func curves(runs []Summary, metric func(Summary) float64) []series {
	type key struct {
		p string
		r float64
	}
	type acc struct{ x, y, n float64 }
	sums := map[key]*acc{}
	var policies []string
	seen := map[string]bool{}
	for _, s := range runs {
		if !seen[s.Policy] {
			seen[s.Policy] = true
			policies = append(policies, s.Policy)
		}
		k := key{s.Policy, s.Rate}
		a := sums[k]
		if a == nil {
			a = &acc{}
			sums[k] = a
		}
		a.x += s.ReqPerS
		a.y += metric(s)
		a.n++
	}
	most := 0.0
	for _, a := range sums {
		most = max(most, a.n)
	}
	var out []series
	for _, p := range policies {
		sr := series{name: p}
		var ks []key
		for k, a := range sums {
			if k.p == p && a.n == most { // the grid, which every seed ran; not one seed's refinements
				ks = append(ks, k)
			}
		}
		sort.Slice(ks, func(i, j int) bool { return ks[i].r < ks[j].r })
		for _, k := range ks {
			a := sums[k]
			sr.x = append(sr.x, a.x/a.n)
			sr.y = append(sr.y, a.y/a.n)
		}
		out = append(out, sr)
	}
	return out
}

// lineChart draws series as an SVG line chart; hline, if not NaN, is a
// dashed reference line (the SLO target).
func lineChart(title, xlabel, ylabel string, ss []series, ymin, ymax, hline float64, logY bool) string {
	const w, h, ml, mr, mt, mb = 720.0, 420.0, 70.0, 170.0, 40.0, 50.0
	xmax := 0.0
	for _, s := range ss {
		for _, x := range s.x {
			xmax = max(xmax, x)
		}
	}
	if xmax == 0 {
		xmax = 1
	}
	ty := func(y float64) float64 {
		if logY {
			y = math.Log10(max(y, ymin))
			return mt + (h-mt-mb)*(1-(y-math.Log10(ymin))/(math.Log10(ymax)-math.Log10(ymin)))
		}
		return mt + (h-mt-mb)*(1-(y-ymin)/(ymax-ymin))
	}
	tx := func(x float64) float64 { return ml + (w-ml-mr)*x/xmax }
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%g" height="%g" font-family="sans-serif" font-size="12">`+"\n", w, h)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="white"/><text x="%g" y="22" font-size="14" font-weight="bold">%s</text>`+"\n", ml, html.EscapeString(title))
	// Axes and ticks.
	fmt.Fprintf(&b, `<line x1="%g" y1="%g" x2="%g" y2="%g" stroke="black"/><line x1="%g" y1="%g" x2="%g" y2="%g" stroke="black"/>`+"\n",
		ml, h-mb, w-mr, h-mb, ml, mt, ml, h-mb)
	for i := 0; i <= 5; i++ {
		x := xmax * float64(i) / 5
		fmt.Fprintf(&b, `<text x="%g" y="%g" text-anchor="middle">%s</text>`+"\n", tx(x), h-mb+16, ftoa(x, 1))
		var y float64
		if logY {
			y = math.Pow(10, math.Log10(ymin)+(math.Log10(ymax)-math.Log10(ymin))*float64(i)/5)
		} else {
			y = ymin + (ymax-ymin)*float64(i)/5
		}
		fmt.Fprintf(&b, `<line x1="%g" y1="%g" x2="%g" y2="%g" stroke="#ddd"/><text x="%g" y="%g" text-anchor="end">%s</text>`+"\n",
			ml, ty(y), w-mr, ty(y), ml-6, ty(y)+4, strconv.FormatFloat(y, 'g', 3, 64))
	}
	fmt.Fprintf(&b, `<text x="%g" y="%g" text-anchor="middle">%s</text>`+"\n", ml+(w-ml-mr)/2, h-12, html.EscapeString(xlabel))
	fmt.Fprintf(&b, `<text transform="translate(16,%g) rotate(-90)" text-anchor="middle">%s</text>`+"\n", mt+(h-mt-mb)/2, html.EscapeString(ylabel))
	if !math.IsNaN(hline) {
		fmt.Fprintf(&b, `<line x1="%g" y1="%g" x2="%g" y2="%g" stroke="gray" stroke-dasharray="5,4"/>`+"\n", ml, ty(hline), w-mr, ty(hline))
	}
	for i, s := range ss {
		c := colour(s.name, i)
		var pts []string
		for k := range s.x {
			pts = append(pts, ftoa(tx(s.x[k]), 1)+","+ftoa(ty(min(max(s.y[k], ymin), ymax)), 1))
		}
		fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="2" points="%s"/>`+"\n", c, strings.Join(pts, " "))
		for _, p := range pts {
			xy := strings.Split(p, ",")
			fmt.Fprintf(&b, `<circle cx="%s" cy="%s" r="3" fill="%s"/>`, xy[0], xy[1], c)
		}
		fmt.Fprintf(&b, "\n"+`<rect x="%g" y="%g" width="14" height="4" fill="%s"/><text x="%g" y="%g">%s</text>`+"\n",
			w-mr+12, mt+18*float64(i)+6, c, w-mr+30, mt+18*float64(i)+12, html.EscapeString(s.name))
	}
	b.WriteString("</svg>\n")
	return b.String()
}

// AttainmentSVG plots the fraction of requests meeting the SLO against the
// offered request rate, per policy (mean over seeds).
func AttainmentSVG(title string, runs []Summary, slo SLO) string {
	return lineChart(title, "offered load (requests/s)", "requests meeting the SLO (%)",
		curves(runs, func(s Summary) float64 { return 100 * s.Attainment }), 0, 100, 100*slo.Attain, false)
}

// TTFTSVG plots the 90th-percentile TTFT against the offered request rate.
func TTFTSVG(title string, runs []Summary, slo SLO) string {
	return lineChart(title, "offered load (requests/s)", "TTFT p90 (s, log scale)",
		curves(runs, func(s Summary) float64 { return s.TTFT[1].Seconds() }), 0.01, 1000, slo.TTFT.Seconds(), true)
}

// GoodputSVG draws each policy's mean goodput with its range over seeds.
func GoodputSVG(title string, stats []GoodputStats) string {
	const w, h, ml, mt, mb = 720.0, 380.0, 70.0, 40.0, 60.0
	top := 0.0
	for _, s := range stats {
		top = max(top, s.Max)
	}
	if top == 0 {
		top = 1
	}
	top *= 1.15
	bw := (w - ml - 20) / float64(max(len(stats), 1))
	ty := func(y float64) float64 { return mt + (h-mt-mb)*(1-y/top) }
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%g" height="%g" font-family="sans-serif" font-size="12">`+"\n", w, h)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="white"/><text x="%g" y="22" font-size="14" font-weight="bold">%s</text>`+"\n", ml, html.EscapeString(title))
	fmt.Fprintf(&b, `<line x1="%g" y1="%g" x2="%g" y2="%g" stroke="black"/>`+"\n", ml, h-mb, w-20, h-mb)
	fmt.Fprintf(&b, `<text transform="translate(16,%g) rotate(-90)" text-anchor="middle">SLO goodput (requests/s)</text>`+"\n", mt+(h-mt-mb)/2)
	for i, s := range stats {
		x := ml + bw*float64(i) + bw*0.15
		c := colour(s.Policy, i)
		fmt.Fprintf(&b, `<rect x="%g" y="%g" width="%g" height="%g" fill="%s"/>`+"\n", x, ty(s.Mean), bw*0.7, h-mb-ty(s.Mean), c)
		cx := x + bw*0.35
		fmt.Fprintf(&b, `<line x1="%g" y1="%g" x2="%g" y2="%g" stroke="black"/>`+"\n", cx, ty(s.Min), cx, ty(s.Max))
		fmt.Fprintf(&b, `<text x="%g" y="%g" text-anchor="middle">%s</text>`+"\n", cx, ty(s.Max)-6, ftoa(s.Mean, 2))
		fmt.Fprintf(&b, `<text x="%g" y="%g" text-anchor="middle">%s</text>`+"\n", cx, h-mb+18, html.EscapeString(s.Policy))
	}
	b.WriteString("</svg>\n")
	return b.String()
}

// ReadRunsCSV reads what WriteRunsCSV wrote, the columns the plots need:
// policy, seed, rate, offered rate, SLO attainment and TTFT p90.
func ReadRunsCSV(r io.Reader) ([]Summary, error) {
	rows, err := readCSV(r)
	if err != nil {
		return nil, err
	}
	out := make([]Summary, 0, len(rows))
	for _, row := range rows {
		s := Summary{Trace: row["trace"], Policy: row["policy"]}
		s.Seed, _ = strconv.ParseUint(row["seed"], 10, 64)
		s.Rate, _ = strconv.ParseFloat(row["rate"], 64)
		s.ReqPerS, _ = strconv.ParseFloat(row["req_per_s"], 64)
		s.Attainment, _ = strconv.ParseFloat(row["slo_attainment"], 64)
		t90, _ := strconv.ParseFloat(row["ttft_p90_s"], 64)
		s.TTFT[1] = time.Duration(t90 * float64(time.Second))
		out = append(out, s)
	}
	return out, nil
}

// ReadGoodputCSV reads what WriteGoodputCSV wrote: policy, seed, rate and
// goodput (the run summaries are left empty).
func ReadGoodputCSV(r io.Reader) ([]Goodput, error) {
	rows, err := readCSV(r)
	if err != nil {
		return nil, err
	}
	out := make([]Goodput, 0, len(rows))
	for _, row := range rows {
		g := Goodput{Policy: row["policy"]}
		g.Seed, _ = strconv.ParseUint(row["seed"], 10, 64)
		g.Rate, _ = strconv.ParseFloat(row["rate"], 64)
		g.ReqPerS, _ = strconv.ParseFloat(row["goodput_req_per_s"], 64)
		out = append(out, g)
	}
	return out, nil
}

func readCSV(r io.Reader) ([]map[string]string, error) {
	cr := csv.NewReader(r)
	head, err := cr.Read()
	if err != nil {
		return nil, err
	}
	var out []map[string]string
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		m := make(map[string]string, len(head))
		for i, h := range head {
			if i < len(rec) {
				m[h] = rec[i]
			}
		}
		out = append(out, m)
	}
}
