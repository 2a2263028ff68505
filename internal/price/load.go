package price

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"sort"
	"strconv"
	"strings"
	"time"

	// Zones such as Asia/Shanghai must resolve the same on every machine.
	_ "time/tzdata"

	"gopkg.in/yaml.v3"

	"baimo/internal/money"
)

// Limits on catalog data.
const (
	maxFileBytes      = 1 << 20
	maxFiles          = 256
	maxModelsPerFile  = 2000
	maxVersions       = 1000
	maxTiers          = 16
	maxWindows        = 16
	maxHolidayRanges  = 2000
	maxHolidaySpan    = 62 // days in one holiday range
	maxNameLen        = 128
	maxTextLen        = 2048
	maxQuantityPerTok = 1_000_000_000_000 // tier thresholds and similar counts
)

// LoadError is an error in catalog data, naming the file and the field.
type LoadError struct {
	File  string
	Field string
	Err   error
}

// Error formats e as "file: field: reason".
func (e *LoadError) Error() string {
	if e.Field == "" {
		return e.File + ": " + e.Err.Error()
	}
	return e.File + ": " + e.Field + ": " + e.Err.Error()
}

// Unwrap returns the underlying error.
func (e *LoadError) Unwrap() error { return e.Err }

// fileSpec is the data form of one catalog file.
type fileSpec struct {
	Vendor     string          `yaml:"vendor"`
	Title      string          `yaml:"title"`
	Note       string          `yaml:"note"`
	Tokenizers []tokenizerSpec `yaml:"tokenizers"`
	Calendars  []calendarSpec  `yaml:"calendars"`
	Models     []modelSpec     `yaml:"models"`
	// Aliases map other names (dated snapshots, -latest names) to a model,
	// in force from a date: the alias table.
	Aliases []aliasSpec `yaml:"aliases"`
	// Exclusions are vendor model names baimo deliberately does not price,
	// each with its reason (retired, fine-tune only, region-only, ...).
	Exclusions []exclusionSpec `yaml:"exclusions"`
	// ExchangeRates is the reference table of dated exchange rates.
	ExchangeRates []exchangeRateSpec `yaml:"exchange_rates"`
}

type tokenizerSpec struct {
	Name            string `yaml:"name"`
	ZhTokensPerChar string `yaml:"zh_tokens_per_char"`
	EnTokensPerWord string `yaml:"en_tokens_per_word"`
	Source          string `yaml:"source"`
	Unverified      bool   `yaml:"unverified"`
}

type calendarSpec struct {
	Name     string    `yaml:"name"`
	Note     string    `yaml:"note"`
	Holidays []Holiday `yaml:"holidays"`
}

type modelSpec struct {
	Name      string     `yaml:"name"`
	Title     string     `yaml:"title"`
	Kind      string     `yaml:"kind"`
	Aliases   []string   `yaml:"aliases"`
	Tokenizer string     `yaml:"tokenizer"`
	FreeQuota *FreeQuota `yaml:"free_quota"`
	Note      string     `yaml:"note"`
	// ContextWindow is the most tokens (prompt and output together) one
	// request may use; MaxOutput the most output tokens it may produce.
	ContextWindow int64           `yaml:"context_window"`
	MaxOutput     int64           `yaml:"max_output"`
	Modalities    *ModalitiesSpec `yaml:"modalities"`
	// LimitsSource says where the limits were read when it is not LiteLLM's
	// table; LimitsUnverified marks limits the research could not confirm.
	LimitsSource     string        `yaml:"limits_source"`
	LimitsUnverified bool          `yaml:"limits_unverified"`
	Versions         []VersionSpec `yaml:"versions"`
}

// VersionSpec is the data form of a Version: YAML in the catalog files, JSON
// in the admin API. Prices are decimal strings, never floats.
type VersionSpec struct {
	Model         string `yaml:"model,omitempty" json:"model,omitempty"`   // AddVersion only
	Vendor        string `yaml:"vendor,omitempty" json:"vendor,omitempty"` // AddVersion of a new model
	EffectiveFrom string `yaml:"effective_from" json:"effective_from"`     // RFC 3339 with zone
	Currency      string `yaml:"currency" json:"currency"`
	Unit          string `yaml:"unit" json:"unit"` // per_1k or per_1m (token prices)
	Source        string `yaml:"source" json:"source"`
	Checked       string `yaml:"checked" json:"checked"` // 2006-01-02
	Unverified    bool   `yaml:"unverified,omitempty" json:"unverified,omitempty"`
	Note          string `yaml:"note,omitempty" json:"note,omitempty"`
	Free          bool   `yaml:"free,omitempty" json:"free,omitempty"`
	// Retired ends the model's list in this currency: from EffectiveFrom on
	// the model is refused (a retired version has no prices).
	Retired      bool                 `yaml:"retired,omitempty" json:"retired,omitempty"`
	Prices       map[string]PriceSpec `yaml:"prices,omitempty" json:"prices,omitempty"`
	Tiers        []TierSpec           `yaml:"tiers,omitempty" json:"tiers,omitempty"`
	Batch        string               `yaml:"batch,omitempty" json:"batch,omitempty"` // multiplier, e.g. "0.5"
	ServiceTiers map[string]string    `yaml:"service_tiers,omitempty" json:"service_tiers,omitempty"`
	Schedule     *ScheduleSpec        `yaml:"schedule,omitempty" json:"schedule,omitempty"`
	// Variants price the variants of a request that a model prices apart
	// (images by size and quality: "1024x1792/hd", "1024x1024", "hd"):
	// each overrides the version's prices for the kinds it names.
	Variants map[string]map[string]PriceSpec `yaml:"variants,omitempty" json:"variants,omitempty"`

	// Model data for AddVersion (the admin API): a new model's kind and
	// limits, or new limits for a known one. Catalog files give these on
	// the model, never on a version.
	Kind          string          `yaml:"-" json:"kind,omitempty"`
	ContextWindow int64           `yaml:"-" json:"context_window,omitempty"`
	MaxOutput     int64           `yaml:"-" json:"max_output,omitempty"`
	Modalities    *ModalitiesSpec `yaml:"-" json:"modalities,omitempty"`
}

// ModalitiesSpec names what a model takes and gives: text, image, audio,
// video, file (input); text, image, audio, video, embedding, score (output).
type ModalitiesSpec struct {
	Input  []string `yaml:"input" json:"input"`
	Output []string `yaml:"output" json:"output"`
}

// PriceSpec is a decimal price per Per units. In data it is written either as
// a bare decimal (per the version's unit for tokens, per 1 for other kinds)
// or as {price: "5", per: 1000}.
type PriceSpec struct {
	Price string `yaml:"price" json:"price"`
	Per   int64  `yaml:"per,omitempty" json:"per,omitempty"`
}

// UnmarshalYAML accepts a scalar or a mapping.
func (p *PriceSpec) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		p.Price = n.Value
		return nil
	}
	type plain PriceSpec
	var q plain
	if err := n.Decode(&q); err != nil {
		return err
	}
	*p = PriceSpec(q)
	return nil
}

// UnmarshalJSON accepts a string, a number literal or an object.
func (p *PriceSpec) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) > 0 && b[0] == '"' {
		return json.Unmarshal(b, &p.Price)
	}
	if len(b) > 0 && b[0] != '{' {
		p.Price = string(b) // keep the literal exactly; no float
		return nil
	}
	type plain PriceSpec
	var q plain
	if err := json.Unmarshal(b, &q); err != nil {
		return err
	}
	*p = PriceSpec(q)
	return nil
}

// TierSpec is the data form of a Tier.
type TierSpec struct {
	Above  int64                `yaml:"above" json:"above"`
	Prices map[string]PriceSpec `yaml:"prices" json:"prices"`
}

// ScheduleSpec is the data form of a Schedule.
type ScheduleSpec struct {
	Zone     string       `yaml:"zone" json:"zone"`
	Default  string       `yaml:"default_period,omitempty" json:"default_period,omitempty"`
	Calendar string       `yaml:"calendar,omitempty" json:"calendar,omitempty"`
	Windows  []WindowSpec `yaml:"windows" json:"windows"`
}

// WindowSpec is the data form of a Window. Days are mon..sun, "weekdays" or
// "all" (the default); From and To are "HH:MM" local time, To may be "24:00".
type WindowSpec struct {
	Name         string   `yaml:"name" json:"name"`
	Days         []string `yaml:"days,omitempty" json:"days,omitempty"`
	From         string   `yaml:"from" json:"from"`
	To           string   `yaml:"to" json:"to"`
	Multiplier   string   `yaml:"multiplier" json:"multiplier"`
	SkipHolidays bool     `yaml:"skip_holidays,omitempty" json:"skip_holidays,omitempty"`
}

// Load reads every *.yaml file at the top of fsys into a new Catalog.
func Load(fsys fs.FS) (*Catalog, error) {
	names, err := fs.Glob(fsys, "*.yaml")
	if err != nil {
		return nil, fmt.Errorf("price: list catalog files: %w", err)
	}
	if len(names) > maxFiles {
		return nil, fmt.Errorf("price: %d catalog files, at most %d", len(names), maxFiles)
	}
	sort.Strings(names)
	files := make(map[string][]byte, len(names))
	for _, name := range names {
		f, err := fsys.Open(name)
		if err != nil {
			return nil, &LoadError{File: name, Err: err}
		}
		b, err := io.ReadAll(io.LimitReader(f, maxFileBytes+1))
		f.Close()
		if err != nil {
			return nil, &LoadError{File: name, Err: err}
		}
		if len(b) > maxFileBytes {
			return nil, &LoadError{File: name, Err: fmt.Errorf("larger than %d bytes", maxFileBytes)}
		}
		files[name] = b
	}
	return LoadFiles(names, files)
}

// LoadFiles builds a Catalog from named YAML documents, in the given order.
func LoadFiles(names []string, files map[string][]byte) (*Catalog, error) {
	specs := make([]fileSpec, len(names))
	for i, name := range names {
		if err := decodeYAML(files[name], &specs[i]); err != nil {
			return nil, &LoadError{File: name, Err: err}
		}
	}
	s := &snapshot{
		models:     map[string]*Model{},
		calendars:  map[string]*Calendar{},
		tokenizers: map[string]*Tokenizer{},
	}
	// Calendars and tokenizers first: models in any file refer to them.
	for i, name := range names {
		for j, cs := range specs[i].Calendars {
			field := fmt.Sprintf("calendars[%d]", j)
			c, err := buildCalendar(cs)
			if err != nil {
				return nil, &LoadError{File: name, Field: field, Err: err}
			}
			if _, dup := s.calendars[c.Name]; dup {
				return nil, &LoadError{File: name, Field: field + ".name", Err: fmt.Errorf("calendar %q defined twice", c.Name)}
			}
			s.calendars[c.Name] = c
		}
		for j, ts := range specs[i].Tokenizers {
			field := fmt.Sprintf("tokenizers[%d]", j)
			tk, err := buildTokenizer(ts)
			if err != nil {
				return nil, &LoadError{File: name, Field: field, Err: err}
			}
			if _, dup := s.tokenizers[tk.Name]; dup {
				return nil, &LoadError{File: name, Field: field + ".name", Err: fmt.Errorf("tokenizer %q defined twice", tk.Name)}
			}
			s.tokenizers[tk.Name] = tk
		}
	}
	for i, name := range names {
		fsp := specs[i]
		if len(fsp.Models) > 0 && fsp.Vendor == "" {
			return nil, &LoadError{File: name, Field: "vendor", Err: errors.New("required when the file has models")}
		}
		if len(fsp.Models) > maxModelsPerFile {
			return nil, &LoadError{File: name, Field: "models", Err: fmt.Errorf("%d models, at most %d", len(fsp.Models), maxModelsPerFile)}
		}
		for j, ms := range fsp.Models {
			field := fmt.Sprintf("models[%d]", j)
			if ms.Name != "" {
				field += " (" + ms.Name + ")"
			}
			m, err := s.buildModel(ms, fsp.Vendor)
			if err != nil {
				var fe *fieldError
				if errors.As(err, &fe) {
					return nil, &LoadError{File: name, Field: field + "." + fe.field, Err: fe.err}
				}
				return nil, &LoadError{File: name, Field: field, Err: err}
			}
			if err := s.addModel(m); err != nil {
				return nil, &LoadError{File: name, Field: field + ".name", Err: err}
			}
		}
	}
	s.sortList()
	var aliases []aliasEntry
	var rates []ExchangeRate
	s.exclusions = map[string]Exclusion{}
	for i, name := range names {
		for j, as := range specs[i].Aliases {
			aliases = append(aliases, aliasEntry{spec: as, file: name, field: fmt.Sprintf("aliases[%d]", j)})
		}
		for j, es := range specs[i].Exclusions {
			field := fmt.Sprintf("exclusions[%d]", j)
			e, err := buildExclusion(es, specs[i].Vendor)
			if err != nil {
				return nil, &LoadError{File: name, Field: field + "." + fieldOf(err), Err: causeOf(err)}
			}
			if _, dup := s.exclusions[e.Name]; dup {
				return nil, &LoadError{File: name, Field: field + ".name", Err: fmt.Errorf("%q excluded twice", e.Name)}
			}
			if _, priced := s.models[e.Name]; priced {
				return nil, &LoadError{File: name, Field: field + ".name", Err: fmt.Errorf("%q is a priced model: it cannot be excluded", e.Name)}
			}
			s.exclusions[e.Name] = e
		}
		for j, rs := range specs[i].ExchangeRates {
			r, err := rs.build()
			if err != nil {
				return nil, &LoadError{File: name, Field: fmt.Sprintf("exchange_rates[%d]", j), Err: err}
			}
			rates = append(rates, r)
		}
	}
	if err := s.buildAliases(aliases); err != nil {
		return nil, err
	}
	for name := range s.exclusions {
		if _, ok := s.aliases[name]; ok {
			return nil, &LoadError{File: "exclusions", Field: name, Err: errors.New("is in the alias table: it cannot be excluded")}
		}
	}
	x, err := NewExchangeRates(rates)
	if err != nil {
		return nil, &LoadError{File: "exchange_rates", Err: err}
	}
	s.rates = x
	c := &Catalog{}
	c.cur.Store(s)
	return c, nil
}

// fieldOf and causeOf split a fieldError into its path and cause.
func fieldOf(err error) string {
	var fe *fieldError
	if errors.As(err, &fe) {
		return fe.field
	}
	return ""
}

func causeOf(err error) error {
	var fe *fieldError
	if errors.As(err, &fe) {
		return fe.err
	}
	return err
}

// decodeYAML decodes one document strictly (unknown fields are errors). The
// parser is third-party code fed untrusted bytes, so a panic in it is turned
// into an error.
func decodeYAML(b []byte, v any) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("invalid YAML: %v", r)
		}
	}()
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(v); err != nil {
		if errors.Is(err, io.EOF) {
			return nil // an empty file
		}
		return err
	}
	var extra any
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return errors.New("more than one YAML document")
	}
	return nil
}

// fieldError carries the path of the field an error is about.
type fieldError struct {
	field string
	err   error
}

func (e *fieldError) Error() string { return e.field + ": " + e.err.Error() }
func (e *fieldError) Unwrap() error { return e.err }

func ferr(field string, format string, args ...any) error {
	return &fieldError{field: field, err: fmt.Errorf(format, args...)}
}

// under prefixes the field path of err with field.
func under(field string, err error) error {
	var fe *fieldError
	if errors.As(err, &fe) {
		return &fieldError{field: field + "." + fe.field, err: fe.err}
	}
	return &fieldError{field: field, err: err}
}

func checkName(field, s string) error {
	if s == "" {
		return ferr(field, "required")
	}
	if len(s) > maxNameLen {
		return ferr(field, "longer than %d bytes", maxNameLen)
	}
	for _, r := range s {
		if r <= ' ' || r == 0x7f {
			return ferr(field, "%q contains a space or control character", s)
		}
	}
	return nil
}

func checkText(field, s string) error {
	if len(s) > maxTextLen {
		return ferr(field, "longer than %d bytes", maxTextLen)
	}
	return nil
}

func buildCalendar(cs calendarSpec) (*Calendar, error) {
	if err := checkName("name", cs.Name); err != nil {
		return nil, err
	}
	if len(cs.Holidays) > maxHolidayRanges {
		return nil, ferr("holidays", "%d ranges, at most %d", len(cs.Holidays), maxHolidayRanges)
	}
	c := &Calendar{Name: cs.Name, Holidays: cs.Holidays, days: map[int32]int{}}
	for i, h := range cs.Holidays {
		field := fmt.Sprintf("holidays[%d]", i)
		from, err := time.Parse(time.DateOnly, h.From)
		if err != nil {
			return nil, ferr(field+".from", "want a date 2006-01-02: %q", h.From)
		}
		to := from
		if h.To != "" {
			if to, err = time.Parse(time.DateOnly, h.To); err != nil {
				return nil, ferr(field+".to", "want a date 2006-01-02: %q", h.To)
			}
		}
		if to.Before(from) {
			return nil, ferr(field+".to", "%s is before from %s", h.To, h.From)
		}
		if to.Sub(from) > maxHolidaySpan*24*time.Hour {
			return nil, ferr(field+".to", "range longer than %d days", maxHolidaySpan)
		}
		for d := from; !d.After(to); d = d.AddDate(0, 0, 1) {
			key := int32(d.Year()*10000 + int(d.Month())*100 + d.Day())
			if _, dup := c.days[key]; dup {
				return nil, ferr(field, "date %s listed twice", d.Format(time.DateOnly))
			}
			c.days[key] = i
		}
	}
	return c, nil
}

func buildTokenizer(ts tokenizerSpec) (*Tokenizer, error) {
	if err := checkName("name", ts.Name); err != nil {
		return nil, err
	}
	zh, err := positiveRatio(ts.ZhTokensPerChar)
	if err != nil {
		return nil, ferr("zh_tokens_per_char", "%v", err)
	}
	en, err := positiveRatio(ts.EnTokensPerWord)
	if err != nil {
		return nil, ferr("en_tokens_per_word", "%v", err)
	}
	return &Tokenizer{Name: ts.Name, ZhTokensPerChar: zh, EnTokensPerWord: en, Source: ts.Source, Unverified: ts.Unverified}, nil
}

func positiveRatio(s string) (money.Ratio, error) {
	if s == "" {
		return money.Ratio{}, errors.New("required")
	}
	r, err := money.ParseRatio(s)
	if err != nil {
		return money.Ratio{}, err
	}
	if r.Num <= 0 {
		return money.Ratio{}, fmt.Errorf("%q must be positive", s)
	}
	return r, nil
}

var modelKinds = map[string]bool{"": true, "chat": true, "embedding": true, "rerank": true, "image": true, "audio": true,
	"speech": true, "search": true}

// Modalities a model may take and give.
var (
	inputModalities  = map[string]bool{"text": true, "image": true, "audio": true, "video": true, "file": true}
	outputModalities = map[string]bool{"text": true, "image": true, "audio": true, "video": true, "embedding": true, "score": true}
)

// maxLimitTokens bounds context windows and output limits (100M tokens).
const maxLimitTokens = 100_000_000

// applyLimits validates and sets a model's context window, maximum output
// and modalities (each only when given).
func applyLimits(m *Model, window, maxOut int64, mods *ModalitiesSpec) error {
	if window < 0 || window > maxLimitTokens {
		return ferr("context_window", "%d out of range (0 to %d tokens)", window, maxLimitTokens)
	}
	if maxOut < 0 || maxOut > maxLimitTokens {
		return ferr("max_output", "%d out of range (0 to %d tokens)", maxOut, maxLimitTokens)
	}
	if window > 0 && maxOut > window {
		return ferr("max_output", "%d is more than the context window %d", maxOut, window)
	}
	if window > 0 {
		m.ContextWindow = window
	}
	if maxOut > 0 {
		m.MaxOutput = maxOut
	}
	if mods == nil {
		return nil
	}
	check := func(field string, list []string, known map[string]bool) error {
		if len(list) == 0 || len(list) > len(known) {
			return ferr(field, "want 1 to %d modalities", len(known))
		}
		for i, x := range list {
			if !known[x] {
				return ferr(fmt.Sprintf("%s[%d]", field, i), "unknown modality %q", x)
			}
		}
		return nil
	}
	if err := check("modalities.input", mods.Input, inputModalities); err != nil {
		return err
	}
	if err := check("modalities.output", mods.Output, outputModalities); err != nil {
		return err
	}
	m.InputModalities = append([]string(nil), mods.Input...)
	m.OutputModalities = append([]string(nil), mods.Output...)
	return nil
}

func (s *snapshot) buildModel(ms modelSpec, vendor string) (*Model, error) {
	if err := checkName("name", ms.Name); err != nil {
		return nil, err
	}
	if !modelKinds[ms.Kind] {
		return nil, ferr("kind", "unknown model kind %q", ms.Kind)
	}
	if err := checkText("note", ms.Note); err != nil {
		return nil, err
	}
	kind := ms.Kind
	if kind == "" {
		kind = "chat"
	}
	m := &Model{Name: ms.Name, Vendor: vendor, Title: ms.Title, Kind: kind, Note: ms.Note,
		Lists: map[money.Currency][]*Version{}}
	for i, a := range ms.Aliases {
		if err := checkName(fmt.Sprintf("aliases[%d]", i), a); err != nil {
			return nil, err
		}
	}
	m.Aliases = ms.Aliases
	if err := applyLimits(m, ms.ContextWindow, ms.MaxOutput, ms.Modalities); err != nil {
		return nil, err
	}
	if err := checkText("limits_source", ms.LimitsSource); err != nil {
		return nil, err
	}
	m.LimitsSource, m.LimitsUnverified = ms.LimitsSource, ms.LimitsUnverified
	if ms.Tokenizer != "" {
		tk, ok := s.tokenizers[ms.Tokenizer]
		if !ok {
			return nil, ferr("tokenizer", "unknown tokenizer %q", ms.Tokenizer)
		}
		m.Tokenizer = tk
	}
	if ms.FreeQuota != nil {
		if ms.FreeQuota.Tokens < 0 || ms.FreeQuota.ValidDays < 0 {
			return nil, ferr("free_quota", "negative quota")
		}
		q := *ms.FreeQuota
		m.FreeQuota = &q
	}
	if len(ms.Versions) == 0 {
		return nil, ferr("versions", "at least one version is required")
	}
	if len(ms.Versions) > maxVersions {
		return nil, ferr("versions", "%d versions, at most %d", len(ms.Versions), maxVersions)
	}
	for i, vs := range ms.Versions {
		field := fmt.Sprintf("versions[%d]", i)
		if vs.Model != "" && vs.Model != ms.Name {
			return nil, ferr(field+".model", "%q differs from the model's name", vs.Model)
		}
		v, err := s.buildVersion(vs, ms.Name, vendor)
		if err != nil {
			return nil, under(field, err)
		}
		m.Lists[v.Currency] = append(m.Lists[v.Currency], v)
	}
	for c, vs := range m.Lists {
		sort.SliceStable(vs, func(i, j int) bool { return vs[i].EffectiveFrom.Before(vs[j].EffectiveFrom) })
		for i := 1; i < len(vs); i++ {
			if vs[i].EffectiveFrom.Equal(vs[i-1].EffectiveFrom) {
				return nil, ferr("versions", "two %s versions start at %s: versions overlap", c, vs[i].EffectiveFrom.Format(time.RFC3339))
			}
		}
	}
	return m, nil
}

// buildVersion validates a VersionSpec.
func (s *snapshot) buildVersion(vs VersionSpec, model, vendor string) (*Version, error) {
	if vs.EffectiveFrom == "" {
		return nil, ferr("effective_from", "required (RFC 3339 with zone)")
	}
	from, err := time.Parse(time.RFC3339, vs.EffectiveFrom)
	if err != nil {
		return nil, ferr("effective_from", "want RFC 3339 with zone, such as 2024-05-21T00:00:00+08:00: %q", vs.EffectiveFrom)
	}
	if from.Year() < 2000 || from.Year() > 2200 {
		return nil, ferr("effective_from", "year %d out of range", from.Year())
	}
	cur := money.Currency(vs.Currency)
	if len(vs.Currency) != 3 || strings.ToUpper(vs.Currency) != vs.Currency {
		return nil, ferr("currency", "want an ISO 4217 code such as CNY or USD: %q", vs.Currency)
	}
	var per int64
	switch vs.Unit {
	case "per_1k":
		per = 1000
	case "per_1m":
		per = 1_000_000
	case "":
		return nil, ferr("unit", "required: per_1k or per_1m")
	default:
		return nil, ferr("unit", "unknown unit %q (want per_1k or per_1m)", vs.Unit)
	}
	for _, f := range []struct{ name, v string }{{"source", vs.Source}, {"note", vs.Note}, {"checked", vs.Checked}} {
		if err := checkText(f.name, f.v); err != nil {
			return nil, err
		}
	}
	if vs.Source == "" {
		return nil, ferr("source", "required (where the price was read)")
	}
	if vs.Checked != "" {
		if _, err := time.Parse(time.DateOnly, vs.Checked); err != nil {
			return nil, ferr("checked", "want a date 2006-01-02: %q", vs.Checked)
		}
	}
	v := &Version{
		ID:            model + "/" + vs.Currency + "/" + vs.EffectiveFrom,
		Model:         model,
		Vendor:        vendor,
		Currency:      cur,
		EffectiveFrom: from,
		Unit:          vs.Unit,
		Source:        vs.Source,
		Checked:       vs.Checked,
		Unverified:    vs.Unverified,
		Note:          vs.Note,
		Free:          vs.Free,
		Origin:        OriginCatalog,
	}
	if v.Prices, err = buildPrices(vs.Prices, per, nil); err != nil {
		return nil, under("prices", err)
	}
	if vs.Retired {
		if v.Free || anySet(&v.Prices) || len(vs.Tiers) > 0 || vs.Schedule != nil || vs.Batch != "" || len(vs.ServiceTiers) > 0 {
			return nil, ferr("retired", "a retired version has no prices, tiers or rules and is not free")
		}
		v.Retired = true
		return v, nil
	}
	if !v.Free && !anySet(&v.Prices) {
		return nil, ferr("prices", "no price given and the version is not marked free")
	}
	if v.Free && (anySet(&v.Prices) || len(vs.Tiers) > 0) {
		return nil, ferr("free", "a free version has no prices or tiers")
	}
	if len(vs.Tiers) > maxTiers {
		return nil, ferr("tiers", "%d tiers, at most %d", len(vs.Tiers), maxTiers)
	}
	last := int64(0)
	for i, ts := range vs.Tiers {
		field := fmt.Sprintf("tiers[%d]", i)
		if ts.Above <= last || ts.Above > maxQuantityPerTok {
			return nil, ferr(field+".above", "%d must be above %d (tiers ascend and start above 0)", ts.Above, last)
		}
		last = ts.Above
		p, err := buildPrices(ts.Prices, per, &v.Prices)
		if err != nil {
			return nil, under(field+".prices", err)
		}
		v.Tiers = append(v.Tiers, Tier{Above: ts.Above, Prices: p})
	}
	if len(vs.Variants) > maxVariants {
		return nil, ferr("variants", "%d variants, at most %d", len(vs.Variants), maxVariants)
	}
	for name, ps := range vs.Variants {
		field := "variants." + name
		if !validVariant(name) {
			return nil, ferr(field, "a variant is a size, a quality or size/quality (letters, digits, x, '.', '-'), at most 64 bytes")
		}
		p, err := buildPrices(ps, per, &v.Prices)
		if err != nil {
			return nil, under(field, err)
		}
		if v.Variants == nil {
			v.Variants = map[string]*Prices{}
		}
		v.Variants[name] = &p
	}
	if vs.Batch != "" {
		if v.Batch, err = positiveRatio(vs.Batch); err != nil {
			return nil, ferr("batch", "%v", err)
		}
	}
	if len(vs.ServiceTiers) > 0 {
		v.ServiceTiers = make(map[string]money.Ratio, len(vs.ServiceTiers))
		for name, mul := range vs.ServiceTiers {
			if err := checkName("service_tiers", name); err != nil {
				return nil, err
			}
			r, err := positiveRatio(mul)
			if err != nil {
				return nil, ferr("service_tiers."+name, "%v", err)
			}
			v.ServiceTiers[name] = r
		}
	}
	if vs.Schedule != nil {
		if v.Schedule, err = s.buildSchedule(*vs.Schedule); err != nil {
			return nil, under("schedule", err)
		}
	}
	return v, nil
}

// maxVariants bounds the variants of a version.
const maxVariants = 64

// validVariant reports whether s names a variant: a size, a quality or
// size/quality, of letters, digits, '.', '-' and 'x'.
func validVariant(s string) bool {
	if s == "" || len(s) > 64 || strings.Count(s, "/") > 1 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '-' || r == '/' || r == '_') {
			return false
		}
	}
	return true
}

func anySet(p *Prices) bool {
	for _, x := range p {
		if x.Set() {
			return true
		}
	}
	return false
}

// buildPrices reads a prices map; kinds not given are taken from base.
func buildPrices(m map[string]PriceSpec, tokenPer int64, base *Prices) (Prices, error) {
	var p Prices
	if base != nil {
		p = *base
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		ps := m[k]
		kind, ok := ParseKind(k)
		if !ok {
			return p, ferr(k, "unknown price kind %q", k)
		}
		n, err := money.ParseNanos(ps.Price)
		if err != nil {
			return p, ferr(k, "%v", err)
		}
		if n < 0 {
			return p, ferr(k, "negative price %s", ps.Price)
		}
		per := ps.Per
		switch {
		case per < 0:
			return p, ferr(k+".per", "negative per %d", per)
		case per == 0 && kind.IsToken():
			per = tokenPer
		case per == 0:
			per = 1
		case per > maxQuantityPerTok:
			return p, ferr(k+".per", "per %d too large", per)
		}
		p[kind] = Price{Nanos: n, Per: per}
	}
	return p, nil
}

var dayNames = map[string][]time.Weekday{
	"sun": {time.Sunday}, "mon": {time.Monday}, "tue": {time.Tuesday}, "wed": {time.Wednesday},
	"thu": {time.Thursday}, "fri": {time.Friday}, "sat": {time.Saturday},
	"weekdays": {time.Monday, time.Tuesday, time.Wednesday, time.Thursday, time.Friday},
	"weekends": {time.Saturday, time.Sunday},
	"all":      {time.Sunday, time.Monday, time.Tuesday, time.Wednesday, time.Thursday, time.Friday, time.Saturday},
}

func (s *snapshot) buildSchedule(ss ScheduleSpec) (*Schedule, error) {
	if ss.Zone == "" {
		return nil, ferr("zone", "required (an IANA zone such as Asia/Shanghai)")
	}
	if len(ss.Zone) > maxNameLen {
		return nil, ferr("zone", "too long")
	}
	loc, err := time.LoadLocation(ss.Zone)
	if err != nil {
		return nil, ferr("zone", "unknown time zone %q", ss.Zone)
	}
	if err := checkText("default_period", ss.Default); err != nil {
		return nil, err
	}
	sc := &Schedule{Default: ss.Default, ZoneName: ss.Zone, Zone: loc}
	if ss.Calendar != "" {
		cal, ok := s.calendars[ss.Calendar]
		if !ok {
			return nil, ferr("calendar", "unknown calendar %q", ss.Calendar)
		}
		sc.Calendar = cal
	}
	if len(ss.Windows) == 0 || len(ss.Windows) > maxWindows {
		return nil, ferr("windows", "want 1 to %d windows, got %d", maxWindows, len(ss.Windows))
	}
	for i, ws := range ss.Windows {
		field := fmt.Sprintf("windows[%d]", i)
		w := Window{Name: ws.Name, SkipHolidays: ws.SkipHolidays}
		if err := checkName(field+".name", ws.Name); err != nil {
			return nil, err
		}
		days := ws.Days
		if len(days) == 0 {
			days = []string{"all"}
		}
		for _, d := range days {
			wds, ok := dayNames[d]
			if !ok {
				return nil, ferr(field+".days", "unknown day %q (mon..sun, weekdays, weekends, all)", d)
			}
			for _, wd := range wds {
				w.Days[wd] = true
			}
		}
		if w.From, err = parseClock(ws.From); err != nil {
			return nil, ferr(field+".from", "%v", err)
		}
		if w.To, err = parseClock(ws.To); err != nil {
			return nil, ferr(field+".to", "%v", err)
		}
		if w.From >= w.To {
			return nil, ferr(field+".to", "%s is not after from %s", ws.To, ws.From)
		}
		if w.Multiplier, err = positiveRatio(ws.Multiplier); err != nil {
			return nil, ferr(field+".multiplier", "%v", err)
		}
		if w.SkipHolidays && sc.Calendar == nil {
			return nil, ferr(field+".skip_holidays", "needs the schedule's calendar")
		}
		sc.Windows = append(sc.Windows, w)
	}
	return sc, nil
}

// parseClock reads "HH:MM" or "HH:MM:SS" (24:00 allowed) as seconds after midnight.
func parseClock(s string) (int32, error) {
	parts := strings.Split(s, ":")
	if len(parts) < 2 || len(parts) > 3 {
		return 0, fmt.Errorf("want HH:MM: %q", s)
	}
	var v [3]int
	for i, p := range parts {
		if len(p) != 2 {
			return 0, fmt.Errorf("want HH:MM: %q", s)
		}
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 {
			return 0, fmt.Errorf("want HH:MM: %q", s)
		}
		v[i] = n
	}
	if v[1] > 59 || v[2] > 59 || v[0] > 24 || (v[0] == 24 && (v[1] != 0 || v[2] != 0)) {
		return 0, fmt.Errorf("time of day out of range: %q", s)
	}
	return int32(v[0]*3600 + v[1]*60 + v[2]), nil
}
