package price

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"baimo/internal/money"
)

// StoredBatch is the stored form of the versions one admin call added
// (baimo prices set, import or retire): applied together or not at all.
// Request is the hash of the call's body, so that a replay of the same
// Idempotency-Key can be told from a conflicting one.
type StoredBatch struct {
	Op       string        `json:"op"` // "set", "import" or "retire"
	Request  string        `json:"request_sha256,omitempty"`
	Versions []VersionSpec `json:"versions"`
}

// DecodeStored reads a StoredVersion's spec: a StoredBatch, or a single
// VersionSpec as versions added before batches were stored.
func DecodeStored(sv StoredVersion) (StoredBatch, error) {
	var probe struct {
		Versions json.RawMessage `json:"versions"`
	}
	if err := json.Unmarshal(sv.Spec, &probe); err != nil {
		return StoredBatch{}, fmt.Errorf("stored price version %s: %w", sv.ID, err)
	}
	if probe.Versions == nil {
		var spec VersionSpec
		if err := json.Unmarshal(sv.Spec, &spec); err != nil {
			return StoredBatch{}, fmt.Errorf("stored price version %s: %w", sv.ID, err)
		}
		return StoredBatch{Op: "set", Versions: []VersionSpec{spec}}, nil
	}
	var b StoredBatch
	if err := json.Unmarshal(sv.Spec, &b); err != nil {
		return StoredBatch{}, fmt.Errorf("stored price version %s: %w", sv.ID, err)
	}
	return b, nil
}

// ApplyStored replays a stored admin call on the catalog (at start, on
// another node, or in the CLI over its embedded catalog). A batch whose
// versions the catalog already holds (a newer shipped catalog, or a replay)
// returns an error wrapping ErrHistory and changes nothing.
func (c *Catalog) ApplyStored(sv StoredVersion) error {
	b, err := DecodeStored(sv)
	if err != nil {
		return err
	}
	if _, err := c.AddVersions(b.Versions); err != nil {
		return fmt.Errorf("stored price version %s: %w", sv.ID, err)
	}
	return nil
}

// RetireSpecs returns the versions that retire model from t on: one per
// currency the model is priced in.
func (c *Catalog) RetireSpecs(model string, t time.Time, source string) ([]VersionSpec, error) {
	m, ok := c.snap().models[model]
	if !ok {
		return nil, &NoPriceError{Model: model, Detail: "model not in the catalog (an alias cannot be retired apart from its model)"}
	}
	var out []VersionSpec
	for _, cur := range m.Currencies() {
		vs := m.Lists[cur]
		if last := vs[len(vs)-1]; last.Retired {
			continue
		}
		out = append(out, VersionSpec{Model: m.Name, EffectiveFrom: t.Format(time.RFC3339Nano), Currency: string(cur),
			Unit: vs[len(vs)-1].Unit, Source: source, Checked: t.UTC().Format(time.DateOnly), Retired: true})
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("retire %s: already retired in every currency", m.Name)
	}
	return out, nil
}

// ParseImport reads a file in the catalog's own format (catalog/README.md)
// into the versions it holds, each with its model's vendor, kind and limits,
// for AddVersions. A version without effective_from gets from (the time the
// import is applied). Alias tables, exclusions, calendars, tokenizers and
// exchange rates are not imported.
func ParseImport(b []byte, from string) ([]VersionSpec, error) {
	var f fileSpec
	if err := decodeYAML(b, &f); err != nil {
		return nil, err
	}
	switch {
	case len(f.Aliases) > 0, len(f.Exclusions) > 0, len(f.Calendars) > 0, len(f.Tokenizers) > 0, len(f.ExchangeRates) > 0:
		return nil, errors.New("an import holds models and their versions only (no aliases, exclusions, calendars, tokenizers or exchange rates)")
	case len(f.Models) == 0:
		return nil, errors.New("no models to import")
	case f.Vendor == "":
		return nil, errors.New("vendor: required")
	}
	var out []VersionSpec
	for i, m := range f.Models {
		if len(m.Aliases) > 0 || m.Tokenizer != "" || m.FreeQuota != nil {
			return nil, fmt.Errorf("models[%d] (%s): aliases, tokenizer and free_quota are not imported", i, m.Name)
		}
		if len(m.Versions) == 0 {
			return nil, fmt.Errorf("models[%d] (%s).versions: at least one version is required", i, m.Name)
		}
		for j, v := range m.Versions {
			if v.Model != "" && v.Model != m.Name {
				return nil, fmt.Errorf("models[%d] (%s).versions[%d].model: %q differs from the model's name", i, m.Name, j, v.Model)
			}
			v.Model, v.Vendor, v.Kind = m.Name, f.Vendor, m.Kind
			if j == 0 { // the model's data once, with its first version
				v.ContextWindow, v.MaxOutput, v.Modalities = m.ContextWindow, m.MaxOutput, m.Modalities
			}
			if v.EffectiveFrom == "" {
				v.EffectiveFrom = from
			}
			out = append(out, v)
		}
	}
	return out, nil
}

// RatingName returns the catalog name a gateway rates a request by: the
// upstream name when the catalog knows it (it is the vendor's own name),
// else the public one.
func (c *Catalog) RatingName(public, upstream string) string {
	if upstream != "" {
		if _, ok := c.Model(upstream); ok {
			return upstream
		}
	}
	return public
}

// Served is a model a gateway serves on one channel: its public name and the
// name sent upstream.
type Served struct {
	Model, Upstream, Channel string
}

// ServeCheck says which served models a gateway would refuse for want of a
// price or an exchange rate, and which reference exchange rates it uses.
type ServeCheck struct {
	Currency money.Currency
	At       time.Time
	// Unpriced are the served models without a price in force (not free).
	Unpriced []Gap
	// NoRate are the served models priced only in another currency with
	// no exchange rate in force.
	NoRate []Gap
	// Converted are the rates the served models are converted with, one per
	// pair, with the models that use it.
	Converted []Conversion
}

// Gap is a served model the gateway would refuse, and why.
type Gap struct {
	Model    string   // public name
	Rated    string   // the catalog name it is rated by
	Channels []string // the channels that serve it
	Err      error
}

// Conversion is an exchange rate served models are rated with.
type Conversion struct {
	Rate   ExchangeRate
	Models []string
	// Reference is true for a rate from the catalog's reference table (no
	// configured rate covers that time).
	Reference bool
}

// CheckServed rates every served model at at, in currency, as a gateway
// would (upstream name when known; free models pass), and reports the gaps
// once, so that a gateway can say at start what it would refuse. rates is
// the table the gateway rates with (configured rates over the reference).
func (c *Catalog) CheckServed(served []Served, currency money.Currency, rates *ExchangeRates, free map[string]bool, at time.Time) ServeCheck {
	out := ServeCheck{Currency: currency, At: at}
	type acc struct {
		gap      Gap
		noRate   bool
		channels map[string]bool
	}
	gaps := map[string]*acc{}
	conv := map[string]*Conversion{}
	ref := c.ReferenceRates()
	for _, s := range served {
		if free[s.Model] {
			continue
		}
		name := c.RatingName(s.Model, s.Upstream)
		r, err := c.Quote(0, 0, RateContext{Model: name, At: at, Currency: currency, Rates: rates})
		if err != nil {
			a := gaps[s.Model]
			if a == nil {
				a = &acc{gap: Gap{Model: s.Model, Rated: name, Err: err}, noRate: errors.Is(err, ErrNoRate), channels: map[string]bool{}}
				gaps[s.Model] = a
			}
			a.channels[s.Channel] = true
			continue
		}
		if r.PriceCurrency == currency || r.Free {
			continue
		}
		rate, _ := rates.RateAt(r.PriceCurrency, currency, at)
		key := string(rate.From) + ">" + string(rate.To) + "@" + rate.EffectiveFrom.String() + rate.Rate.String()
		cv := conv[key]
		if cv == nil {
			refRate, ok := ref.RateAt(r.PriceCurrency, currency, at)
			cv = &Conversion{Rate: rate, Reference: ok && refRate == rate}
			conv[key] = cv
		}
		if !containsString(cv.Models, s.Model) {
			cv.Models = append(cv.Models, s.Model)
		}
	}
	names := make([]string, 0, len(gaps))
	for n := range gaps {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		a := gaps[n]
		for ch := range a.channels {
			a.gap.Channels = append(a.gap.Channels, ch)
		}
		sort.Strings(a.gap.Channels)
		if a.noRate {
			out.NoRate = append(out.NoRate, a.gap)
		} else {
			out.Unpriced = append(out.Unpriced, a.gap)
		}
	}
	for _, cv := range conv {
		sort.Strings(cv.Models)
		out.Converted = append(out.Converted, *cv)
	}
	sort.Slice(out.Converted, func(i, j int) bool {
		return out.Converted[i].Rate.From < out.Converted[j].Rate.From
	})
	return out
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// Refused reports whether the gateway would refuse any served model.
func (sc ServeCheck) Refused() bool { return len(sc.Unpriced)+len(sc.NoRate) > 0 }

// Problem is the one message a gateway logs at start when it would refuse
// served models: which ones, and the fix. "" when none would be refused.
func (sc ServeCheck) Problem() string {
	if !sc.Refused() {
		return ""
	}
	var b strings.Builder
	if len(sc.Unpriced) > 0 {
		fmt.Fprintf(&b, "%d served models have no %s price and will be refused with model_not_priced: %s. "+
			"Fix: add a price (baimo prices set MODEL --input P --output P --currency %s), map the public name to a priced upstream model, "+
			"or list the model in billing.free_models.", len(sc.Unpriced), sc.Currency, gapList(sc.Unpriced), sc.Currency)
	}
	if len(sc.NoRate) > 0 {
		if b.Len() > 0 {
			b.WriteString(" ")
		}
		fmt.Fprintf(&b, "%d served models are priced only in another currency with no exchange rate to %s in force at %s: %s. "+
			"Fix: add the rate to billing.exchange_rates (- {from: USD, to: %s, effective_from: \"...\", rate: \"...\", source: \"...\"}), "+
			"or add a %s price.", len(sc.NoRate), sc.Currency, sc.At.UTC().Format(time.RFC3339), gapList(sc.NoRate), sc.Currency, sc.Currency)
	}
	return b.String()
}

func gapList(gs []Gap) string {
	parts := make([]string, len(gs))
	for i, g := range gs {
		p := g.Model
		if g.Rated != g.Model {
			p += " (as " + g.Rated + ")"
		}
		parts[i] = p + " on " + strings.Join(g.Channels, ", ")
	}
	return strings.Join(parts, "; ")
}

// Notes returns one line per exchange rate served models are rated with,
// saying its date, source and age (the reference table is not a live feed).
func (sc ServeCheck) Notes() []string {
	var out []string
	for _, cv := range sc.Converted {
		what := "configured"
		if cv.Reference {
			what = "the catalog's reference rate"
		}
		days := int(sc.At.Sub(cv.Rate.EffectiveFrom).Hours() / 24)
		line := fmt.Sprintf("%d models priced in %s are billed in %s at %s, %s of %s (%d days old; source: %s): %s",
			len(cv.Models), cv.Rate.From, cv.Rate.To, cv.Rate.Rate, what, cv.Rate.EffectiveFrom.Format(time.DateOnly), days,
			cv.Rate.Source, strings.Join(cv.Models, ", "))
		if cv.Reference {
			line += ". Set billing.exchange_rates for a current rate."
		}
		out = append(out, line)
	}
	return out
}

// RequestHash is the hash of an admin call that StoredBatch.Request holds.
func RequestHash(op string, body []byte) string {
	return hashHex([]byte(op + "\x00" + string(bytes.TrimSpace(body))))
}

func hashHex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}
