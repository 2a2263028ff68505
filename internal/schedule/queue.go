package schedule

import "time"

// Waiter is one request waiting in the gateway-side queue.
type Waiter struct {
	Req      *Request
	Tag      any // the caller's (the simulator keeps its request record here)
	Enqueued time.Time
	class    Class // the class it waits in (a batch request near its deadline moves up)
	tenant   *tenantQueue
	next     *Waiter
	// Set when it leaves the queue.
	Ticket   *Ticket
	Decision Decision
	Outcome  Outcome
	ready    chan struct{} // for Acquire; nil in the simulator
	heapIdx  int           // in the batch deadline heap
}

// tenantQueue is one tenant's FIFO within a class.
type tenantQueue struct {
	name       string
	head, tail *Waiter
	n          int
	prev, next *tenantQueue // the class's ring of tenants with waiters
}

// classQueue serves its tenants round-robin, each tenant first come, first
// served: a tenant sending many requests waits behind its own, not in front
// of others'.
type classQueue struct {
	tenants map[string]*tenantQueue
	cursor  *tenantQueue // next tenant to serve; nil when empty
	n       int
}

func (q *classQueue) push(w *Waiter) {
	if q.tenants == nil {
		q.tenants = map[string]*tenantQueue{}
	}
	t := q.tenants[w.Req.Tenant]
	if t == nil {
		t = &tenantQueue{name: w.Req.Tenant}
		q.tenants[w.Req.Tenant] = t
	}
	if t.n == 0 { // join the ring just before the cursor: served last
		if q.cursor == nil {
			t.prev, t.next = t, t
			q.cursor = t
		} else {
			t.prev, t.next = q.cursor.prev, q.cursor
			q.cursor.prev.next = t
			q.cursor.prev = t
		}
	}
	w.tenant = t
	w.next = nil
	if t.tail == nil {
		t.head = w
	} else {
		t.tail.next = w
	}
	t.tail = w
	t.n++
	q.n++
}

// peek returns the next waiter round-robin, without taking it.
func (q *classQueue) peek() *Waiter {
	if q.cursor == nil {
		return nil
	}
	return q.cursor.head
}

// take removes w as served: if it was the turn of w's tenant, the turn
// passes to the next tenant.
func (q *classQueue) take(w *Waiter) {
	t := w.tenant
	turn := q.cursor == t
	q.unlinkWaiter(w)
	if turn && t.n > 0 {
		q.cursor = t.next
	}
}

// unlinkWaiter removes w (anywhere in its tenant's FIFO).
func (q *classQueue) unlinkWaiter(w *Waiter) {
	t := w.tenant
	var prev *Waiter
	for x := t.head; x != nil && x != w; x = x.next {
		prev = x
	}
	if prev == nil {
		t.head = w.next
	} else {
		prev.next = w.next
	}
	if t.tail == w {
		t.tail = prev
	}
	w.next = nil
	t.n--
	q.n--
	if t.n == 0 {
		if t.next == t {
			q.cursor = nil
		} else {
			t.prev.next = t.next
			t.next.prev = t.prev
			if q.cursor == t {
				q.cursor = t.next
			}
		}
		t.prev, t.next = nil, nil
		delete(q.tenants, t.name)
	}
}

// oldest returns the waiter that has waited longest (the earliest head of
// any tenant).
func (q *classQueue) oldest() *Waiter {
	if q.cursor == nil {
		return nil
	}
	var o *Waiter
	t := q.cursor
	for {
		if o == nil || t.head.Enqueued.Before(o.Enqueued) {
			o = t.head
		}
		t = t.next
		if t == q.cursor {
			return o
		}
	}
}
