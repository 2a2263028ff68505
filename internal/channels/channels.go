// Package channels keeps the upstream channels an operator adds, edits,
// disables and deletes at run time (through the admin API or the console),
// stored in the database next to the read-only channels of the
// configuration file, and applies every change to the serving path of each
// node sharing the store within about a second (Manager.Run polls the
// store's version, as prices and routing events are replicated).
//
// A stored channel's upstream keys stay in the store and the gateway: no
// view of a channel shows them, only how many there are.
package channels

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"baimo/internal/clock"
	"baimo/internal/config"
)

// Errors callers decide on.
var (
	ErrNotFound = errors.New("no such channel")
	ErrExists   = errors.New("a channel with this name exists")
	ErrReadOnly = errors.New("this channel comes from the configuration file: change it there")
	ErrInvalid  = errors.New("invalid channel")
)

// Limits on what an operator may store.
const (
	MaxKeys    = 64
	MaxKeyLen  = 1024
	MaxModels  = 1000
	MaxChannel = 1000 // stored channels
)

// Stored is a channel as the store keeps it: its Spec as JSON.
type Stored struct {
	Name      string
	Spec      []byte
	UpdatedNs int64
}

// Store keeps the channels added at run time. Implementations live under
// internal/store.
type Store interface {
	Channels(ctx context.Context) ([]Stored, error)
	// PutChannel creates or replaces the channel named c.Name.
	PutChannel(ctx context.Context, c Stored) error
	// DeleteChannel removes a channel, or returns ErrNotFound.
	DeleteChannel(ctx context.Context, name string) error
	// ChannelsVersion changes whenever a channel is put or deleted.
	ChannelsVersion(ctx context.Context) (string, error)
}

// Target is the serving path: it takes the whole set of channels (the
// file's first), serving the active ones. gateway.Gateway is one.
type Target interface {
	ApplyChannels(chans []config.Channel) error
}

// Spec is a channel as an operator writes it: the body of POST and PUT
// /admin/channels, and its stored form.
type Spec struct {
	Name     string            `json:"name"`
	Kind     string            `json:"kind"`
	BaseURL  string            `json:"base_url"`
	APIKeys  []string          `json:"api_keys,omitempty"`
	Models   map[string]string `json:"models"`
	Priority int               `json:"priority"`
	Weight   int               `json:"weight"`
	Disabled bool              `json:"disabled"`
}

// config returns s as a checked configuration channel.
func (s Spec) config() (config.Channel, error) {
	if len(s.APIKeys) > MaxKeys || len(s.Models) > MaxModels {
		return config.Channel{}, fmt.Errorf("%w: at most %d keys and %d models", ErrInvalid, MaxKeys, MaxModels)
	}
	c := config.Channel{Name: s.Name, Kind: s.Kind, BaseURL: s.BaseURL, Models: config.ModelMap(s.Models),
		Priority: s.Priority, Weight: s.Weight, Disabled: s.Disabled}
	for _, k := range s.APIKeys {
		if k == "" || len(k) > MaxKeyLen || strings.ContainsAny(k, "\r\n") {
			return config.Channel{}, fmt.Errorf("%w: api_keys: each key is 1 to %d bytes on one line", ErrInvalid, MaxKeyLen)
		}
		c.APIKeys = append(c.APIKeys, config.NewSecret(k))
	}
	if s.Priority < 0 || s.Weight < 0 || s.Weight > 1000 {
		return config.Channel{}, fmt.Errorf("%w: priority must not be negative and weight is 0 to 1000", ErrInvalid)
	}
	if err := config.CheckChannel(&c, ""); err != nil {
		return config.Channel{}, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	return c, nil
}

// View is a channel as the admin API shows it: never its keys.
type View struct {
	Name           string            `json:"name"`
	Object         string            `json:"object"`
	Kind           string            `json:"kind"`
	BaseURL        string            `json:"base_url"`
	Models         map[string]string `json:"models"`
	Priority       int               `json:"priority"`
	Weight         int               `json:"weight"`
	Keys           int               `json:"keys"`
	Disabled       bool              `json:"disabled"`
	Active         bool              `json:"active"`
	InactiveReason string            `json:"inactive_reason,omitempty"`
	// Source is "config" (read-only) or "database".
	Source    string     `json:"source"`
	UpdatedAt *time.Time `json:"updated_at,omitempty"`
}

func view(c config.Channel, source string, updated int64) View {
	v := View{Name: c.Name, Object: "channel", Kind: c.Kind, BaseURL: c.BaseURL, Models: c.Models, Priority: c.Priority,
		Weight: c.Weight, Keys: len(c.Keys()), Disabled: c.Disabled, Active: c.Active, InactiveReason: c.InactiveReason,
		Source: source}
	if v.Models == nil {
		v.Models = map[string]string{}
	}
	if updated != 0 {
		t := time.Unix(0, updated).UTC()
		v.UpdatedAt = &t
	}
	return v
}

// Options tunes a Manager.
type Options struct {
	Clock clock.Clock
	Log   *slog.Logger
}

// Manager lists and changes the channels, and keeps a Target serving them.
type Manager struct {
	store  Store
	fixed  []config.Channel // from the configuration file, read-only
	target Target
	clk    clock.Clock
	log    *slog.Logger

	mu      sync.Mutex // serialises changes and loads
	version string
}

// New returns a manager of the channels in store next to fixed ones (the
// configuration file's, checked), applied to target.
func New(store Store, fixed []config.Channel, target Target, opt Options) *Manager {
	if opt.Clock == nil {
		opt.Clock = clock.Real{}
	}
	if opt.Log == nil {
		opt.Log = slog.Default()
	}
	return &Manager{store: store, fixed: fixed, target: target, clk: opt.Clock, log: opt.Log}
}

// stored reads and decodes the store's channels, skipping (and logging)
// any that no longer checks, or whose name the file now uses.
func (m *Manager) stored(ctx context.Context) ([]config.Channel, []int64, error) {
	list, err := m.store.Channels(ctx)
	if err != nil {
		return nil, nil, err
	}
	var out []config.Channel
	var at []int64
	for _, s := range list {
		var spec Spec
		if err := json.Unmarshal(s.Spec, &spec); err != nil {
			m.log.Error("stored channel unreadable", "channel", s.Name, "err", err)
			continue
		}
		c, err := spec.config()
		if err != nil {
			m.log.Error("stored channel refused", "channel", s.Name, "err", err)
			continue
		}
		if m.isFixed(c.Name) {
			m.log.Warn("stored channel shadowed by the configuration file", "channel", c.Name)
			continue
		}
		out, at = append(out, c), append(at, s.UpdatedNs)
	}
	return out, at, nil
}

func (m *Manager) isFixed(name string) bool {
	return slices.ContainsFunc(m.fixed, func(c config.Channel) bool { return c.Name == name })
}

// Load reads the stored channels and applies them with the file's. Run
// calls it when the store changes; changes through the Manager call it too.
func (m *Manager) Load(ctx context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.load(ctx)
}

func (m *Manager) load(ctx context.Context) error {
	v, err := m.store.ChannelsVersion(ctx)
	if err != nil {
		return err
	}
	stored, _, err := m.stored(ctx)
	if err != nil {
		return err
	}
	if err := m.target.ApplyChannels(append(slices.Clone(m.fixed), stored...)); err != nil {
		return fmt.Errorf("apply channels: %w", err)
	}
	m.version = v
	return nil
}

// Run reloads the channels whenever the store's version moves (another
// node changed them), checking every interval until ctx ends.
func (m *Manager) Run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		v, err := m.store.ChannelsVersion(ctx)
		if err != nil {
			m.log.Warn("channels: check for changes", "err", err)
			continue
		}
		m.mu.Lock()
		if v != m.version {
			if err := m.load(ctx); err != nil {
				m.log.Error("channels: reload", "err", err)
			} else {
				m.log.Info("channels reloaded", "version", v)
			}
		}
		m.mu.Unlock()
	}
}

// List returns every channel: the file's, then the stored ones, by name.
func (m *Manager) List(ctx context.Context) ([]View, error) {
	stored, at, err := m.stored(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]View, 0, len(m.fixed)+len(stored))
	for _, c := range m.fixed {
		out = append(out, view(c, "config", 0))
	}
	var db []View
	for i, c := range stored {
		db = append(db, view(c, "database", at[i]))
	}
	sort.Slice(db, func(i, j int) bool { return db[i].Name < db[j].Name })
	return append(out, db...), nil
}

// Get returns one channel.
func (m *Manager) Get(ctx context.Context, name string) (View, error) {
	list, err := m.List(ctx)
	if err != nil {
		return View{}, err
	}
	for _, v := range list {
		if v.Name == name {
			return v, nil
		}
	}
	return View{}, ErrNotFound
}

// Create stores a new channel and serves it.
func (m *Manager) Create(ctx context.Context, s Spec) (View, error) {
	return m.change(ctx, s.Name, func(old *Spec) (*Spec, error) {
		if old != nil {
			return nil, ErrExists
		}
		return &s, nil
	})
}

// Update replaces a stored channel; a spec without api_keys keeps the
// channel's keys.
func (m *Manager) Update(ctx context.Context, name string, s Spec) (View, error) {
	return m.change(ctx, name, func(old *Spec) (*Spec, error) {
		if old == nil {
			return nil, ErrNotFound
		}
		s.Name = name
		if s.APIKeys == nil {
			s.APIKeys = old.APIKeys
		}
		return &s, nil
	})
}

// SetDisabled disables or enables a stored channel.
func (m *Manager) SetDisabled(ctx context.Context, name string, disabled bool) (View, error) {
	return m.change(ctx, name, func(old *Spec) (*Spec, error) {
		if old == nil {
			return nil, ErrNotFound
		}
		s := *old
		s.Disabled = disabled
		return &s, nil
	})
}

// Delete removes a stored channel.
func (m *Manager) Delete(ctx context.Context, name string) error {
	_, err := m.change(ctx, name, func(old *Spec) (*Spec, error) {
		if old == nil {
			return nil, ErrNotFound
		}
		return nil, nil
	})
	return err
}

// change reads the stored channel name (nil when none), lets fn decide the
// new spec (nil deletes), checks and stores it, and applies the new set.
func (m *Manager) change(ctx context.Context, name string, fn func(old *Spec) (*Spec, error)) (View, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.isFixed(name) {
		return View{}, ErrReadOnly
	}
	list, err := m.store.Channels(ctx)
	if err != nil {
		return View{}, err
	}
	var old *Spec
	for _, s := range list {
		if s.Name == name {
			var spec Spec
			if err := json.Unmarshal(s.Spec, &spec); err == nil {
				old = &spec
			}
		}
	}
	next, err := fn(old)
	if err != nil {
		return View{}, err
	}
	if next == nil {
		if err := m.store.DeleteChannel(ctx, name); err != nil {
			return View{}, err
		}
		return View{}, m.load(ctx)
	}
	if old == nil && len(list) >= MaxChannel {
		return View{}, fmt.Errorf("%w: at most %d stored channels", ErrInvalid, MaxChannel)
	}
	c, err := next.config()
	if err != nil {
		return View{}, err
	}
	next.BaseURL = c.BaseURL
	b, _ := json.Marshal(next) // plain struct: cannot fail
	now := m.clk.Now().UnixNano()
	if err := m.store.PutChannel(ctx, Stored{Name: next.Name, Spec: b, UpdatedNs: now}); err != nil {
		return View{}, err
	}
	if err := m.load(ctx); err != nil {
		// The serving path refused the new set: put the store back as it was.
		var undo error
		if old == nil {
			undo = m.store.DeleteChannel(ctx, name)
		} else {
			ob, _ := json.Marshal(old)
			undo = m.store.PutChannel(ctx, Stored{Name: name, Spec: ob, UpdatedNs: now + 1})
		}
		return View{}, errors.Join(fmt.Errorf("%w: %v", ErrInvalid, err), undo)
	}
	return view(c, "database", now), nil
}
