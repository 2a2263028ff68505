package engine

// waitQueue holds the waiting sequences ordered by (priority, arrival): a
// binary heap, so a preempted sequence, which keeps its arrival number,
// goes back ahead of everything that arrived after it.
type waitQueue struct {
	h        []*Seq
	priority bool
}

func (q *waitQueue) len() int { return len(q.h) }

func (q *waitQueue) less(a, b *Seq) bool {
	if q.priority && a.Req.Priority != b.Req.Priority {
		return a.Req.Priority < b.Req.Priority
	}
	return a.order < b.order
}

func (q *waitQueue) push(s *Seq) {
	q.h = append(q.h, s)
	q.up(len(q.h) - 1)
}

func (q *waitQueue) peek() *Seq { return q.h[0] }

func (q *waitQueue) pop() *Seq {
	s := q.h[0]
	q.removeAt(0)
	return s
}

// remove deletes s if it is queued; it is O(n), used only on abort.
func (q *waitQueue) remove(s *Seq) bool {
	for i, x := range q.h {
		if x == s {
			q.removeAt(i)
			return true
		}
	}
	return false
}

func (q *waitQueue) removeAt(i int) {
	last := len(q.h) - 1
	q.h[i] = q.h[last]
	q.h[last] = nil
	q.h = q.h[:last]
	if i < last {
		q.down(i)
		q.up(i)
	}
}

func (q *waitQueue) up(i int) {
	for i > 0 {
		p := (i - 1) / 2
		if !q.less(q.h[i], q.h[p]) {
			return
		}
		q.h[i], q.h[p] = q.h[p], q.h[i]
		i = p
	}
}

func (q *waitQueue) down(i int) {
	n := len(q.h)
	for {
		l := 2*i + 1
		if l >= n {
			return
		}
		m := l
		if r := l + 1; r < n && q.less(q.h[r], q.h[l]) {
			m = r
		}
		if !q.less(q.h[m], q.h[i]) {
			return
		}
		q.h[i], q.h[m] = q.h[m], q.h[i]
		i = m
	}
}
