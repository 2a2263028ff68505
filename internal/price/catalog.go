package price

import (
	"fmt"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"baimo/internal/money"
)

// Catalog is the set of priced models. It is safe for concurrent use: reads
// (rating) see an immutable snapshot through an atomic pointer, and writers
// (AddVersion) copy what they change and swap the pointer.
type Catalog struct {
	mu  sync.Mutex // serialises writers
	cur atomic.Pointer[snapshot]
}

type snapshot struct {
	models     map[string]*Model // by name and the model's own aliases
	list       []*Model          // sorted by vendor, then name
	aliases    map[string]*Alias // the alias table (dated names)
	exclusions map[string]Exclusion
	calendars  map[string]*Calendar
	tokenizers map[string]*Tokenizer
	rates      *ExchangeRates // the reference table
}

func (s *snapshot) addModel(m *Model) error {
	for _, n := range append([]string{m.Name}, m.Aliases...) {
		if _, dup := s.models[n]; dup {
			return fmt.Errorf("model name or alias %q defined twice", n)
		}
	}
	s.models[m.Name] = m
	for _, a := range m.Aliases {
		s.models[a] = m
	}
	s.list = append(s.list, m)
	return nil
}

func (s *snapshot) sortList() {
	sort.Slice(s.list, func(i, j int) bool {
		a, b := s.list[i], s.list[j]
		if a.Vendor != b.Vendor {
			return a.Vendor < b.Vendor
		}
		return a.Name < b.Name
	})
}

func (c *Catalog) snap() *snapshot {
	if s := c.cur.Load(); s != nil {
		return s
	}
	return &snapshot{}
}

// Model returns the model named name, or named by one of its aliases; a
// dated alias gives its latest target (use Resolve for a given time).
func (c *Catalog) Model(name string) (*Model, bool) {
	return c.snap().latest(name)
}

// ReferenceRates returns the catalog's reference exchange rates
// (exchange_rates.yaml), used when the operator configures none for a pair.
func (c *Catalog) ReferenceRates() *ExchangeRates {
	return c.snap().rates
}

// Models returns every model sorted by vendor and name. The models must not
// be modified.
func (c *Catalog) Models() []*Model {
	s := c.snap()
	out := make([]*Model, len(s.list))
	copy(out, s.list)
	return out
}

// Calendar returns the holiday calendar named name.
func (c *Catalog) Calendar(name string) (*Calendar, bool) {
	cal, ok := c.snap().calendars[name]
	return cal, ok
}

// Tokenizers returns the tokenizer densities known to the catalog.
func (c *Catalog) Tokenizers() map[string]*Tokenizer {
	s := c.snap()
	out := make(map[string]*Tokenizer, len(s.tokenizers))
	for k, v := range s.tokenizers {
		out[k] = v
	}
	return out
}

// AddVersion adds a price version at run time (the admin API stores these in
// the database and replays them at start, in order). spec.Model names the
// model; an unknown model is created under spec.Vendor (required then).
// The version must start after the last existing version of that model in
// that currency: history is never edited. Callers that must not backdate a
// price also check EffectiveFrom against their clock.
func (c *Catalog) AddVersion(spec VersionSpec) (*Version, error) {
	vs, err := c.AddVersions([]VersionSpec{spec})
	if err != nil {
		return nil, err
	}
	return vs[0], nil
}

// maxBatch bounds the versions one AddVersions call (one import) may add.
const maxBatch = 5000

// AddVersions adds several versions at once, as AddVersion does each, in
// order: all of them or, on the first error, none.
func (c *Catalog) AddVersions(specs []VersionSpec) ([]*Version, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	ns, out, err := c.snap().withVersions(specs)
	if err != nil {
		return nil, err
	}
	c.cur.Store(ns)
	return out, nil
}

// CheckVersions reports the error AddVersions would return for specs,
// changing nothing.
func (c *Catalog) CheckVersions(specs []VersionSpec) error {
	_, _, err := c.snap().withVersions(specs)
	return err
}

// withVersions returns a copy of s with specs added, in order.
func (s *snapshot) withVersions(specs []VersionSpec) (*snapshot, []*Version, error) {
	if len(specs) == 0 {
		return nil, nil, fmt.Errorf("add versions: none given")
	}
	if len(specs) > maxBatch {
		return nil, nil, fmt.Errorf("add versions: %d versions, at most %d at once", len(specs), maxBatch)
	}
	ns := &snapshot{
		models:     make(map[string]*Model, len(s.models)+len(specs)),
		list:       make([]*Model, 0, len(s.list)+len(specs)),
		aliases:    s.aliases,
		exclusions: s.exclusions,
		calendars:  s.calendars,
		tokenizers: s.tokenizers,
		rates:      s.rates,
	}
	for k, m := range s.models {
		ns.models[k] = m
	}
	ns.list = append(ns.list, s.list...)
	out := make([]*Version, 0, len(specs))
	for i, spec := range specs {
		v, err := ns.addVersion(spec)
		if err != nil {
			if len(specs) > 1 {
				return nil, nil, fmt.Errorf("versions[%d]: %w", i, err)
			}
			return nil, nil, err
		}
		out = append(out, v)
	}
	ns.sortList()
	return ns, out, nil
}

// addVersion adds one version to ns in place (ns is a private copy: models
// themselves are replaced, never modified).
func (ns *snapshot) addVersion(spec VersionSpec) (*Version, error) {
	if err := checkName("model", spec.Model); err != nil {
		return nil, fmt.Errorf("add version: %w", err)
	}
	m, known := ns.models[spec.Model]
	vendor := spec.Vendor
	if !known && vendor == "" {
		// A new model under an alias table name takes the vendor of the
		// model the alias names; as a model it then wins over the alias.
		if am, ok := ns.latest(spec.Model); ok {
			vendor = am.Vendor
		}
	}
	if known {
		if vendor != "" && vendor != m.Vendor {
			return nil, fmt.Errorf("add version of %s: vendor %q differs from the catalog's %q", spec.Model, vendor, m.Vendor)
		}
		vendor = m.Vendor
	} else if err := checkName("vendor", vendor); err != nil {
		return nil, fmt.Errorf("add version of new model %s: %w", spec.Model, err)
	}
	name := spec.Model
	if known {
		name = m.Name // an alias adds to the model it names
	}
	v, err := ns.buildVersion(spec, name, vendor)
	if err != nil {
		return nil, fmt.Errorf("add version of %s: %w", spec.Model, err)
	}
	v.Origin = OriginOperator
	var nm Model
	if known {
		nm = *m
	} else {
		nm = Model{Name: name, Vendor: vendor, Kind: "chat"}
	}
	if spec.Kind != "" {
		if !modelKinds[spec.Kind] {
			return nil, fmt.Errorf("add version of %s: unknown model kind %q", spec.Model, spec.Kind)
		}
		nm.Kind = spec.Kind
	}
	if err := applyLimits(&nm, spec.ContextWindow, spec.MaxOutput, spec.Modalities); err != nil {
		return nil, fmt.Errorf("add version of %s: %w", spec.Model, err)
	}
	nm.Lists = make(map[money.Currency][]*Version, len(nm.Lists)+1)
	if known {
		for cur, vs := range m.Lists {
			nm.Lists[cur] = vs
		}
	}
	prev := nm.Lists[v.Currency]
	if n := len(prev); n > 0 && !v.EffectiveFrom.After(prev[n-1].EffectiveFrom) {
		return nil, fmt.Errorf("add version of %s in %s: starts %s, not after the last version (%s): %w",
			name, v.Currency, v.EffectiveFrom.Format(time.RFC3339), prev[n-1].EffectiveFrom.Format(time.RFC3339), ErrHistory)
	}
	list := make([]*Version, len(prev), len(prev)+1)
	copy(list, prev)
	nm.Lists[v.Currency] = append(list, v)
	if known {
		for k, mm := range ns.models {
			if mm == m {
				delete(ns.models, k)
			}
		}
		for i, mm := range ns.list {
			if mm == m {
				ns.list = append(ns.list[:i:i], ns.list[i+1:]...)
				break
			}
		}
	}
	if err := ns.addModel(&nm); err != nil {
		return nil, fmt.Errorf("add version of %s: %w", spec.Model, err)
	}
	return v, nil
}

// versionsOf returns all versions of m in all currencies, by currency then time.
func versionsOf(m *Model) []*Version {
	var out []*Version
	for _, cur := range m.Currencies() {
		out = append(out, m.Lists[cur]...)
	}
	return out
}

// matchVendor reports whether m belongs to vendor (case-insensitive; "" matches all).
func matchVendor(m *Model, vendor string) bool {
	return vendor == "" || strings.EqualFold(m.Vendor, vendor)
}
