package sqlite

import (
	"strconv"
	"sync"
	"sync/atomic"
)

// SQLite looks up the name of each numbered parameter ($N) it binds in a
// list of all the statement's names, so binding n of them costs n²: a
// multi-row insert of thousands of parameters spent most of its time there.
// Anonymous parameters (?) have no name. rebind turns a text whose
// parameters are $1, $2, ... $n, each once and in that order (every insert
// of package sqlcore), into the same text with ?s; any other text, whose
// parameters are few, is left as it is.
func rebind(query string) string {
	if v, ok := rebound.Load(query); ok {
		return v.(string)
	}
	out := rebindText(query)
	if reboundN.Add(1) <= maxRebound {
		rebound.Store(query, out)
	}
	return out
}

// maxRebound bounds the texts remembered (filters build a few hundred).
const maxRebound = 4096

var (
	rebound  sync.Map // query -> rebound text
	reboundN atomic.Int64
)

func rebindText(q string) string {
	var b []byte
	next := 1
	quoted := false
	for i := 0; i < len(q); i++ {
		c := q[i]
		switch {
		case c == '\'':
			quoted = !quoted
		case c == '$' && !quoted:
			j := i + 1
			for j < len(q) && q[j] >= '0' && q[j] <= '9' {
				j++
			}
			n, err := strconv.Atoi(q[i+1 : j])
			if err != nil || n != next {
				return q // not in order, repeated, or not a parameter
			}
			if b == nil {
				b = make([]byte, 0, len(q))
				b = append(b, q[:i]...)
			}
			b = append(b, '?')
			next++
			i = j - 1
			continue
		}
		if b != nil {
			b = append(b, c)
		}
	}
	if b == nil {
		return q
	}
	return string(b)
}
