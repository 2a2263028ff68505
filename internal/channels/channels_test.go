package channels_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"baimo/internal/channels"
	"baimo/internal/config"
)

// memStore is a Store in memory.
type memStore struct {
	mu   sync.Mutex
	rows map[string]channels.Stored
	n    int
}

func (s *memStore) Channels(context.Context) ([]channels.Stored, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []channels.Stored
	for _, c := range s.rows {
		out = append(out, c)
	}
	slices.SortFunc(out, func(a, b channels.Stored) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

func (s *memStore) PutChannel(_ context.Context, c channels.Stored) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rows[c.Name] = c
	s.n++
	return nil
}

func (s *memStore) DeleteChannel(_ context.Context, name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.rows[name]; !ok {
		return channels.ErrNotFound
	}
	delete(s.rows, name)
	s.n++
	return nil
}

func (s *memStore) ChannelsVersion(context.Context) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return fmt.Sprint(s.n), nil
}

// target records the sets applied; fail refuses the next one.
type target struct {
	mu   sync.Mutex
	sets [][]string // active channel names of each set
	fail bool
}

func (t *target) ApplyChannels(cs []config.Channel) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.fail {
		t.fail = false
		return errors.New("refused")
	}
	var names []string
	for _, c := range cs {
		if c.Active {
			names = append(names, c.Name)
		}
	}
	t.sets = append(t.sets, names)
	return nil
}

func (t *target) last() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.sets) == 0 {
		return "none"
	}
	return strings.Join(t.sets[len(t.sets)-1], ",")
}

func fixed(t *testing.T) []config.Channel {
	c := config.Channel{Name: "file", Kind: "openai", BaseURL: "http://127.0.0.1:1/v1", Models: config.ModelMap{"m": "m"}}
	if err := config.CheckChannel(&c, ""); err != nil {
		t.Fatal(err)
	}
	return []config.Channel{c}
}

func spec(name string) channels.Spec {
	return channels.Spec{Name: name, Kind: "openai", BaseURL: "https://api.example.com/v1/", APIKeys: []string{"sk-secret-" + name},
		Models: map[string]string{"x": "x-upstream"}}
}

func TestManager(t *testing.T) {
	ctx := context.Background()
	st := &memStore{rows: map[string]channels.Stored{}}
	tg := &target{}
	m := channels.New(st, fixed(t), tg, channels.Options{})
	if err := m.Load(ctx); err != nil {
		t.Fatal(err)
	}
	if tg.last() != "file" {
		t.Fatalf("applied %q", tg.last())
	}
	v, err := m.Create(ctx, spec("db1"))
	if err != nil {
		t.Fatal(err)
	}
	if v.Source != "database" || v.Keys != 1 || v.BaseURL != "https://api.example.com/v1" || !v.Active || tg.last() != "file,db1" {
		t.Errorf("created %+v, applied %q", v, tg.last())
	}
	b, _ := json.Marshal(v)
	if strings.Contains(string(b), "sk-secret") {
		t.Errorf("a view shows the key: %s", b)
	}
	if _, err := m.Create(ctx, spec("db1")); !errors.Is(err, channels.ErrExists) {
		t.Errorf("create twice = %v", err)
	}
	for _, name := range []string{"file"} {
		if _, err := m.Create(ctx, spec(name)); !errors.Is(err, channels.ErrReadOnly) {
			t.Errorf("create over the file's channel = %v", err)
		}
		if err := m.Delete(ctx, name); !errors.Is(err, channels.ErrReadOnly) {
			t.Errorf("delete the file's channel = %v", err)
		}
	}
	bad := []func(s *channels.Spec){
		func(s *channels.Spec) { s.Name = "has space" },
		func(s *channels.Spec) { s.Kind = "grpc" },
		func(s *channels.Spec) { s.BaseURL = "ftp://x" },
		func(s *channels.Spec) { s.Models = nil },
		func(s *channels.Spec) { s.APIKeys = []string{"a\nb"} },
		func(s *channels.Spec) { s.Weight = -1 },
	}
	for i, f := range bad {
		s := spec(fmt.Sprintf("bad%d", i))
		f(&s)
		if _, err := m.Create(ctx, s); !errors.Is(err, channels.ErrInvalid) {
			t.Errorf("bad spec %d: %v", i, err)
		}
	}
	// An update without keys keeps them; disabling takes it out of service.
	up := spec("db1")
	up.APIKeys, up.Priority = nil, 3
	if v, err := m.Update(ctx, "db1", up); err != nil || v.Keys != 1 || v.Priority != 3 {
		t.Errorf("update = %+v, %v", v, err)
	}
	if _, err := m.SetDisabled(ctx, "db1", true); err != nil || tg.last() != "file" {
		t.Errorf("disable: %v, applied %q", err, tg.last())
	}
	// A set the serving path refuses is not kept.
	tg.fail = true
	if _, err := m.Create(ctx, spec("db2")); !errors.Is(err, channels.ErrInvalid) {
		t.Errorf("refused set = %v", err)
	}
	if _, err := m.Get(ctx, "db2"); !errors.Is(err, channels.ErrNotFound) {
		t.Errorf("the refused channel was kept: %v", err)
	}
	if err := m.Delete(ctx, "db1"); err != nil {
		t.Fatal(err)
	}
	if err := m.Delete(ctx, "db1"); !errors.Is(err, channels.ErrNotFound) {
		t.Errorf("delete twice = %v", err)
	}
}

// TestRunPicksUpOtherNodes: a change made through another manager on the
// same store reaches this one's target within its interval.
func TestRunPicksUpOtherNodes(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	st := &memStore{rows: map[string]channels.Stored{}}
	here, there := &target{}, &target{}
	a := channels.New(st, fixed(t), here, channels.Options{})
	b := channels.New(st, fixed(t), there, channels.Options{})
	if err := a.Load(ctx); err != nil {
		t.Fatal(err)
	}
	go a.Run(ctx, 10*time.Millisecond)
	if _, err := b.Create(ctx, spec("elsewhere")); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for here.last() != "file,elsewhere" {
		if time.Now().After(deadline) {
			t.Fatalf("the other node's channel never arrived: %q", here.last())
		}
		time.Sleep(5 * time.Millisecond)
	}
}
