package sqlcore

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
)

// names is the dictionary of the strings usage records repeat (key, tenant,
// model, channel and upstream model names, endpoints, price versions,
// sources, error classes): a record stores each as the id of its row in
// usage_names, a few bytes where the string took tens. "" is id 0 and has
// no row. Rows are only ever added, so an id, once committed, names its
// string for good; the cache holds only committed ones.
type names struct {
	mu   sync.Mutex
	ids  map[string]int64
	strs map[int64]string
}

// maxCachedNames bounds the cache (clients choose the model names of the
// requests refused before their model was checked); past it, names are
// looked up in the database.
const maxCachedNames = 1 << 16

func newNames() *names { return &names{ids: map[string]int64{}, strs: map[int64]string{}} }

func (n *names) cached(s string) (int64, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	id, ok := n.ids[s]
	return id, ok
}

func (n *names) remember(id int64, s string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if len(n.ids) < maxCachedNames {
		n.ids[s], n.strs[id] = id, s
	}
}

// txNames is the names one write transaction added: not committed yet, so
// not cached (a rollback takes them back).
type txNames map[string]int64

// id returns the id of s, adding s to the dictionary inside the
// transaction q when it is new.
func (n *names) id(ctx context.Context, q Querier, tx txNames, s string) (int64, error) {
	if s == "" {
		return 0, nil
	}
	if id, ok := n.cached(s); ok {
		return id, nil
	}
	if id, ok := tx[s]; ok {
		return id, nil
	}
	var id int64
	err := q.QueryRow(ctx, `INSERT INTO usage_names (name) VALUES ($1) ON CONFLICT (name) DO NOTHING RETURNING id`, s).Scan(&id)
	if err == nil {
		tx[s] = id
		return id, nil
	}
	if !noRows(err) {
		return 0, fmt.Errorf("name %.40q: %w", s, err)
	}
	// Another transaction added it, and has committed (PostgreSQL waits
	// for it at the insert; SQLite has one writer).
	if err := q.QueryRow(ctx, `SELECT id FROM usage_names WHERE name = $1`, s).Scan(&id); err != nil {
		return 0, fmt.Errorf("name %.40q: %w", s, err)
	}
	n.remember(id, s)
	return id, nil
}

// lookup returns the id of s, and false when no record names it (reads:
// nothing is added).
func (n *names) lookup(ctx context.Context, q Querier, s string) (int64, bool, error) {
	if s == "" {
		return 0, true, nil
	}
	if id, ok := n.cached(s); ok {
		return id, true, nil
	}
	var id int64
	err := q.QueryRow(ctx, `SELECT id FROM usage_names WHERE name = $1`, s).Scan(&id)
	if noRows(err) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("name %.40q: %w", s, err)
	}
	n.remember(id, s)
	return id, true, nil
}

// resolver turns the ids a query read into strings, fetching the ones not
// cached in one query.
type resolver struct {
	n       *names
	q       Querier
	strs    map[int64]string
	missing map[int64]bool
}

func (n *names) resolver(q Querier) *resolver {
	return &resolver{n: n, q: q, strs: map[int64]string{}, missing: map[int64]bool{}}
}

// want notes ids to resolve.
func (r *resolver) want(ids ...int64) {
	r.n.mu.Lock()
	defer r.n.mu.Unlock()
	for _, id := range ids {
		if id == 0 {
			continue
		}
		if s, ok := r.n.strs[id]; ok {
			r.strs[id] = s
		} else if _, ok := r.strs[id]; !ok {
			r.missing[id] = true
		}
	}
}

// fetch reads the noted ids not cached.
func (r *resolver) fetch(ctx context.Context) error {
	for len(r.missing) > 0 {
		var ids []string
		for id := range r.missing {
			ids = append(ids, strconv.FormatInt(id, 10))
			delete(r.missing, id)
			if len(ids) == 500 {
				break
			}
		}
		// The ids are integers this package formatted: safe in the text.
		rows, err := queryAll(ctx, r.q, func(row Row) (struct {
			id int64
			s  string
		}, error) {
			var x struct {
				id int64
				s  string
			}
			return x, row.Scan(&x.id, &x.s)
		}, `SELECT id, name FROM usage_names WHERE id IN (`+strings.Join(ids, ", ")+`)`)
		if err != nil {
			return fmt.Errorf("names: %w", err)
		}
		for _, x := range rows {
			r.strs[x.id] = x.s
			r.n.remember(x.id, x.s)
		}
	}
	return nil
}

// name returns the string of id ("" for 0); fetch first.
func (r *resolver) name(id int64) string {
	if id == 0 {
		return ""
	}
	if s, ok := r.strs[id]; ok {
		return s
	}
	return "(name " + strconv.FormatInt(id, 10) + " missing)"
}
