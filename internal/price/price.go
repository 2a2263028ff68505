// Package price is baimo's dated price catalog and its rating engine.
//
// A Catalog holds, for every model, one list of dated price Versions per
// currency (a vendor's CNY and USD lists are separate, never conversions of
// each other). A version is in force from its EffectiveFrom until the next
// version of the same model and currency begins; history is never edited, a
// change is a new version. Rate turns a usage.Usage into priced Lines at the
// version in force when the request started.
//
// Rounding rule for rating. A price is quoted as P nano-units per N units
// (N = 1,000 or 1,000,000 tokens, or 1 image, 1,000 search calls, ...). Every
// multiplier that applies (time-of-day period, batch, service tier, a tenant's
// markup, an exchange rate) is an exact ratio M = a/b. The amount of a line is
// quantity × P × a / (N × b), computed with a 128-bit intermediate and rounded
// once, half away from zero, to the nano. The total is the exact sum of the
// lines. Overflow anywhere is an error, never a wrap. No float64 is used.
//
// The package is domain only: it imports neither net/http nor database/sql.
package price

import (
	"fmt"
	"strings"
	"time"

	"baimo/internal/money"
)

// Kind is what a rated line charges for.
type Kind uint8

// Line kinds. Token kinds come first. Usage records store a kind by its
// number (AppendLines): add new kinds at the end, never reorder them.
const (
	KindInput        Kind = iota // prompt tokens neither read from nor written to a cache
	KindCachedInput              // prompt tokens read from the vendor's cache (cache hit)
	KindCacheWrite5m             // prompt tokens written to a 5-minute cache
	KindCacheWrite1h             // prompt tokens written to a 1-hour cache
	KindOutput                   // generated tokens (reasoning included unless priced apart)
	KindReasoning                // reasoning tokens, when the model prices them apart from output
	KindImage                    // images
	KindAudioSecond              // seconds of audio
	KindCharacter                // characters
	KindSearchCall               // web-search or fetch calls (per-request fee)
	numKinds
)

var kindNames = [numKinds]string{
	"input", "cached_input", "cache_write_5m", "cache_write_1h", "output", "reasoning",
	"image", "audio_second", "character", "search_call",
}

// String returns the stable name of k used in data files and JSON.
func (k Kind) String() string {
	if k < numKinds {
		return kindNames[k]
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// MarshalText encodes k by name.
func (k Kind) MarshalText() ([]byte, error) {
	if k >= numKinds {
		return nil, fmt.Errorf("price: unknown kind %d", uint8(k))
	}
	return []byte(kindNames[k]), nil
}

// UnmarshalText decodes a kind name.
func (k *Kind) UnmarshalText(b []byte) error {
	p, ok := ParseKind(string(b))
	if !ok {
		return fmt.Errorf("price: unknown kind %q", b)
	}
	*k = p
	return nil
}

// ParseKind returns the kind named s.
func ParseKind(s string) (Kind, bool) {
	for i, n := range kindNames {
		if n == s {
			return Kind(i), true
		}
	}
	return 0, false
}

// Kinds returns every line kind in order.
func Kinds() []Kind {
	ks := make([]Kind, numKinds)
	for i := range ks {
		ks[i] = Kind(i)
	}
	return ks
}

// IsToken reports whether k counts tokens (time-of-day, batch and service-tier
// multipliers apply only to token kinds; per-request and media fees are flat).
func (k Kind) IsToken() bool { return k <= KindReasoning }

// Price is a price of Nanos nano-units per Per units. Per == 0 means unset.
type Price struct {
	Nanos int64
	Per   int64
}

// Set reports whether p holds a price.
func (p Price) Set() bool { return p.Per > 0 }

// Prices holds one price per line kind.
type Prices [numKinds]Price

// Tier holds the prices for requests whose prompt (all input tokens) is longer
// than Above; the whole request is rated at one tier.
type Tier struct {
	Above  int64
	Prices Prices // base prices with this tier's overrides applied
}

// Window is a time-of-day period of a Schedule, in the schedule's zone:
// [From, To) seconds after midnight on the listed weekdays.
type Window struct {
	Name         string
	Days         [7]bool // indexed by time.Weekday
	From, To     int32   // seconds after local midnight, From < To
	Multiplier   money.Ratio
	SkipHolidays bool // the window does not apply on the calendar's holidays
}

// Schedule multiplies token prices by time of day. Outside every window the
// listed prices apply unchanged.
type Schedule struct {
	Default  string // name of the period outside every window, e.g. "off-peak"
	ZoneName string
	Zone     *time.Location
	Calendar *Calendar
	Windows  []Window
}

// At returns the window in force at t, if any.
func (s *Schedule) At(t time.Time) (*Window, bool) {
	lt := t.In(s.Zone)
	wd := lt.Weekday()
	h, m, sec := lt.Clock()
	sod := int32(h*3600 + m*60 + sec)
	holiday := -1
	for i := range s.Windows {
		w := &s.Windows[i]
		if !w.Days[wd] || sod < w.From || sod >= w.To {
			continue
		}
		if w.SkipHolidays && s.Calendar != nil {
			if holiday < 0 {
				holiday = 0
				y, mo, d := lt.Date()
				if s.Calendar.IsHoliday(y, mo, d) {
					holiday = 1
				}
			}
			if holiday == 1 {
				continue
			}
		}
		return w, true
	}
	return nil, false
}

// Calendar is a set of public holidays (whole local days).
type Calendar struct {
	Name     string
	Holidays []Holiday
	days     map[int32]int // yyyymmdd -> index in Holidays
}

// Holiday is one holiday period, both ends included.
type Holiday struct {
	Name       string `json:"name" yaml:"name"`
	From       string `json:"from" yaml:"from"` // 2006-01-02
	To         string `json:"to" yaml:"to"`
	Unverified bool   `json:"unverified,omitempty" yaml:"unverified"`
	Source     string `json:"source,omitempty" yaml:"source"`
}

// IsHoliday reports whether the local date y-m-d is a holiday.
func (c *Calendar) IsHoliday(y int, m time.Month, d int) bool {
	_, ok := c.days[int32(y*10000+int(m)*100+d)]
	return ok
}

// FreeQuota describes a vendor's free allowance for a model. It is data only:
// the ledger enforces quotas.
type FreeQuota struct {
	Tokens    int64  `json:"tokens,omitempty" yaml:"tokens"`
	ValidDays int    `json:"valid_days,omitempty" yaml:"valid_days"`
	Note      string `json:"note,omitempty" yaml:"note"`
}

// Tokenizer holds measured token densities used to translate token counts
// into rough amounts of text (for people; never for charging).
type Tokenizer struct {
	Name string
	// ZhTokensPerChar and EnTokensPerWord are ratios: tokens per Chinese
	// character and tokens per English word.
	ZhTokensPerChar money.Ratio
	EnTokensPerWord money.Ratio
	Source          string
	Unverified      bool
}

// Version is one dated price list entry for a model in one currency.
type Version struct {
	ID            string
	Model         string
	Vendor        string
	Currency      money.Currency
	EffectiveFrom time.Time
	Unit          string // "per_1k" or "per_1m": how the vendor states token prices
	Source        string
	Checked       string // date the source was checked, 2006-01-02
	Unverified    bool
	Note          string
	Free          bool
	Retired       bool   // the model is refused from EffectiveFrom on (no prices)
	Origin        string // OriginCatalog (shipped) or OriginOperator (added at run time)
	Prices        Prices // prices for prompts up to the first tier
	Tiers         []Tier // ascending Above
	Batch         money.Ratio
	ServiceTiers  map[string]money.Ratio
	Schedule      *Schedule
	// Variants are the prices of the variants a model prices apart
	// (images by size and quality), each the version's prices with its
	// overrides; see Version.variant.
	Variants map[string]*Prices
}

// variant returns the prices of a request's variant, "size/quality" with
// either part possibly empty: those of size/quality, else of the size,
// else of the quality; ok is false when the version prices none of them
// apart.
func (v *Version) variant(name string) (*Prices, bool) {
	if len(v.Variants) == 0 || name == "" {
		return nil, false
	}
	size, quality, _ := strings.Cut(name, "/")
	for _, k := range [...]string{name, size, quality} {
		if k == "" {
			continue
		}
		if p, ok := v.Variants[k]; ok {
			return p, true
		}
	}
	return nil, false
}

// Where a version comes from.
const (
	OriginCatalog  = "catalog"  // the shipped catalog (catalog/*.yaml)
	OriginOperator = "operator" // added at run time (admin API, baimo prices set|import|retire)
)

// pricesFor returns the tier index and prices for a prompt of n tokens.
func (v *Version) pricesFor(n int64) (int, *Prices) {
	p, tier := &v.Prices, 0
	for i := range v.Tiers {
		if n > v.Tiers[i].Above {
			p, tier = &v.Tiers[i].Prices, i+1
		}
	}
	return tier, p
}

// Model is a priced model with its dated versions per currency.
type Model struct {
	Name      string
	Vendor    string
	Title     string
	Kind      string // chat, embedding, rerank, image, audio, speech, search
	Aliases   []string
	Tokenizer *Tokenizer
	FreeQuota *FreeQuota
	Note      string
	// ContextWindow and MaxOutput are token limits (0: unknown); the
	// modalities name what the model takes and gives (nil: unknown).
	ContextWindow    int64
	MaxOutput        int64
	InputModalities  []string
	OutputModalities []string
	LimitsSource     string // where the limits come from when not LiteLLM's table
	LimitsUnverified bool
	// Lists holds the versions for each currency in ascending EffectiveFrom.
	Lists map[money.Currency][]*Version
}

// Currencies returns the currencies m is priced in, sorted.
func (m *Model) Currencies() []money.Currency {
	cs := make([]money.Currency, 0, len(m.Lists))
	for c := range m.Lists {
		cs = append(cs, c)
	}
	sortCurrencies(cs)
	return cs
}

func sortCurrencies(cs []money.Currency) {
	for i := 1; i < len(cs); i++ {
		for j := i; j > 0 && cs[j] < cs[j-1]; j-- {
			cs[j], cs[j-1] = cs[j-1], cs[j]
		}
	}
}

// At returns the version of m in currency c in force at t.
func (m *Model) At(c money.Currency, t time.Time) (*Version, bool) {
	vs := m.Lists[c]
	// Last version with EffectiveFrom <= t (binary search, no closure).
	lo, hi := 0, len(vs)
	for lo < hi {
		mid := int(uint(lo+hi) >> 1)
		if vs[mid].EffectiveFrom.After(t) {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	if lo == 0 {
		return nil, false
	}
	return vs[lo-1], true
}
