package price

import (
	"fmt"
	"sort"
	"time"
)

// aliasSpec is one row of a catalog file's alias table: Name resolves to
// Model from From on (always, when From is empty). Several rows of one name
// with different From make a dated alias, such as a -latest name that moved
// from one model to the next.
type aliasSpec struct {
	Name  string `yaml:"name"`
	Model string `yaml:"model"`
	From  string `yaml:"from"` // RFC 3339 with zone, or empty
	Note  string `yaml:"note"`
}

type aliasEntry struct {
	spec        aliasSpec
	file, field string
}

// AliasTarget is where an alias points from a date on.
type AliasTarget struct {
	Model string    `json:"model"`
	From  time.Time `json:"from"` // zero: since always
	Note  string    `json:"note,omitempty"`
}

// Alias is a name of the alias table with its dated targets (ascending).
type Alias struct {
	Name    string        `json:"name"`
	Targets []AliasTarget `json:"targets"`
}

// At returns the model the alias names at t.
func (a *Alias) At(t time.Time) (string, bool) {
	name, ok := "", false
	for _, tg := range a.Targets {
		if tg.From.After(t) {
			break
		}
		name, ok = tg.Model, true
	}
	return name, ok
}

// buildAliases validates the alias table against the models: every target is
// a model (not another alias), no alias is also a model's name, and the rows
// of one name start at different times.
func (s *snapshot) buildAliases(entries []aliasEntry) error {
	s.aliases = map[string]*Alias{}
	for _, e := range entries {
		le := func(field string, err error) error {
			return &LoadError{File: e.file, Field: e.field + field, Err: err}
		}
		if err := checkName("name", e.spec.Name); err != nil {
			return le(".name", causeOf(err))
		}
		if err := checkText("note", e.spec.Note); err != nil {
			return le(".note", causeOf(err))
		}
		if _, ok := s.models[e.spec.Name]; ok {
			return le(".name", fmt.Errorf("%q is already a model's name or alias", e.spec.Name))
		}
		m, ok := s.models[e.spec.Model]
		if !ok {
			return le(".model", fmt.Errorf("unknown model %q", e.spec.Model))
		}
		tg := AliasTarget{Model: m.Name, Note: e.spec.Note}
		if e.spec.From != "" {
			t, err := time.Parse(time.RFC3339, e.spec.From)
			if err != nil {
				return le(".from", fmt.Errorf("want RFC 3339 with zone: %q", e.spec.From))
			}
			tg.From = t
		}
		a := s.aliases[e.spec.Name]
		if a == nil {
			a = &Alias{Name: e.spec.Name}
			s.aliases[e.spec.Name] = a
		}
		for _, old := range a.Targets {
			if old.From.Equal(tg.From) {
				return le(".from", fmt.Errorf("alias %q has two targets from the same time", e.spec.Name))
			}
		}
		a.Targets = append(a.Targets, tg)
		sort.SliceStable(a.Targets, func(i, j int) bool { return a.Targets[i].From.Before(a.Targets[j].From) })
	}
	return nil
}

// resolve returns the model name (a model's name, one of its own aliases,
// or an alias table name in force at t) denotes, and the alias used ("" when
// name is a model's own).
func (s *snapshot) resolve(name string, at time.Time) (*Model, string, bool) {
	if m, ok := s.models[name]; ok {
		return m, "", true
	}
	a, ok := s.aliases[name]
	if !ok {
		return nil, "", false
	}
	target, ok := a.At(at)
	if !ok {
		return nil, name, false
	}
	m, ok := s.models[target]
	return m, name, ok
}

// latest returns the model name denotes at its last target (for callers
// without a time, such as a catalog listing).
func (s *snapshot) latest(name string) (*Model, bool) {
	if m, ok := s.models[name]; ok {
		return m, true
	}
	a, ok := s.aliases[name]
	if !ok || len(a.Targets) == 0 {
		return nil, false
	}
	m, ok := s.models[a.Targets[len(a.Targets)-1].Model]
	return m, ok
}

// Resolve returns the model name denotes at t: the model of that name, the
// model whose own aliases list it, or the alias table's target in force at
// t (a dated snapshot name, a -latest name).
func (c *Catalog) Resolve(name string, at time.Time) (*Model, bool) {
	m, _, ok := c.snap().resolve(name, at)
	return m, ok
}

// Alias returns the alias table entry of name.
func (c *Catalog) Alias(name string) (*Alias, bool) {
	a, ok := c.snap().aliases[name]
	return a, ok
}

// Aliases returns the alias table, sorted by name.
func (c *Catalog) Aliases() []*Alias {
	s := c.snap()
	out := make([]*Alias, 0, len(s.aliases))
	for _, a := range s.aliases {
		out = append(out, a)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// aliasesOf returns the alias table names that point at model (at any time).
func (s *snapshot) aliasesOf(model string) []string {
	var out []string
	for name, a := range s.aliases {
		for _, tg := range a.Targets {
			if tg.Model == model {
				out = append(out, name)
				break
			}
		}
	}
	sort.Strings(out)
	return out
}

// ModelInfo is what the catalog knows about a model besides its prices.
type ModelInfo struct {
	Name   string // the catalog's name of the model (an alias resolved)
	Vendor string
	Kind   string // chat, embedding, rerank, image, audio, speech, search
	// ContextWindow is the most tokens one request may use, prompt and
	// output together; MaxOutput the most output tokens it may produce.
	// Zero when the catalog does not know.
	ContextWindow int64
	MaxOutput     int64
	// InputModalities and OutputModalities name what the model takes and
	// gives (text, image, audio, video, file; text, image, audio, video,
	// embedding, score); nil when the catalog does not know.
	InputModalities  []string
	OutputModalities []string
}

// Info returns what the catalog knows of model at t (aliases resolved at t):
// its context window, maximum output and modalities. ok is false for a
// model the catalog does not know.
func (c *Catalog) Info(model string, at time.Time) (ModelInfo, bool) {
	m, _, ok := c.snap().resolve(model, at)
	if !ok {
		return ModelInfo{}, false
	}
	return m.Info(), true
}

// Info returns m's limits and modalities.
func (m *Model) Info() ModelInfo {
	return ModelInfo{Name: m.Name, Vendor: m.Vendor, Kind: m.Kind, ContextWindow: m.ContextWindow, MaxOutput: m.MaxOutput,
		InputModalities: m.InputModalities, OutputModalities: m.OutputModalities}
}

// exclusionSpec is the data form of an Exclusion.
type exclusionSpec struct {
	Name   string `yaml:"name"`
	Vendor string `yaml:"vendor"`
	Reason string `yaml:"reason"`
	Note   string `yaml:"note"`
}

// Exclusion reasons.
const (
	ExcludedRetired    = "retired"     // the vendor no longer serves it
	ExcludedFineTune   = "fine-tune"   // a fine-tuned model's price: priced per tuned model, not by name
	ExcludedRegionOnly = "region-only" // offered only in a region or cloud baimo does not reach
	ExcludedUnpriced   = "unpriced"    // the vendor publishes no per-token price (preview, experiment, endpoint id)
	ExcludedNotAPI     = "not-api"     // not a model served through the APIs baimo speaks (realtime, containers)
	ExcludedUnmetered  = "unmetered"   // billed by a usage kind baimo does not meter apart (audio tokens, search queries)
)

var exclusionReasons = map[string]bool{ExcludedRetired: true, ExcludedFineTune: true, ExcludedRegionOnly: true,
	ExcludedUnpriced: true, ExcludedNotAPI: true, ExcludedUnmetered: true}

// Exclusion is a vendor model name baimo deliberately does not price, and why.
type Exclusion struct {
	Name   string `json:"name"`
	Vendor string `json:"vendor"`
	Reason string `json:"reason"`
	Note   string `json:"note,omitempty"`
}

func buildExclusion(es exclusionSpec, vendor string) (Exclusion, error) {
	if err := checkName("name", es.Name); err != nil {
		return Exclusion{}, err
	}
	if !exclusionReasons[es.Reason] {
		return Exclusion{}, ferr("reason", "unknown reason %q (retired, fine-tune, region-only, unpriced, not-api, unmetered)", es.Reason)
	}
	if err := checkText("note", es.Note); err != nil {
		return Exclusion{}, err
	}
	if es.Vendor != "" {
		vendor = es.Vendor
	}
	if vendor == "" {
		return Exclusion{}, ferr("vendor", "required (or the file's vendor)")
	}
	return Exclusion{Name: es.Name, Vendor: vendor, Reason: es.Reason, Note: es.Note}, nil
}

// Excluded returns why name is deliberately not priced, if it is listed.
func (c *Catalog) Excluded(name string) (Exclusion, bool) {
	e, ok := c.snap().exclusions[name]
	return e, ok
}

// Exclusions returns every exclusion, sorted by name.
func (c *Catalog) Exclusions() []Exclusion {
	s := c.snap()
	out := make([]Exclusion, 0, len(s.exclusions))
	for _, e := range s.exclusions {
		out = append(out, e)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// unknownModel is the error for a name the catalog cannot price at t.
func (s *snapshot) unknownModel(name string, rc RateContext, alias bool) error {
	e := &NoPriceError{Model: name, Currency: rc.Currency, Detail: "model not in the catalog"}
	if alias {
		e.At, e.Detail = rc.At, "an alias that names no model at that time"
	}
	if ex, ok := s.exclusions[name]; ok {
		e.Detail = "not priced by baimo: " + ex.Reason
		if ex.Note != "" {
			e.Detail += ", " + ex.Note
		}
	}
	return e
}
