package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"baimo/internal/ledger"
	"baimo/internal/money"
	"baimo/internal/store/sqlcore"
)

var _ ledger.Pipeliner = (*ledgerTx)(nil)

// Pipeline runs a batch's one-statement settlements and holds as three
// multi-row statements sent in one round trip, instead of one statement per
// operation (PostgreSQL's fixed cost per statement — executor start-up and
// shutdown, locks, protocol — was most of a batch's time):
//
//  1. sqlLockAccounts locks the customer accounts the steps touch, in id
//     order, as the ledger's global lock order asks (the multi-row updates
//     below take rows in an order PostgreSQL does not promise);
//  2. sqlPostHolds does, for every settlement, what PostHold does for one:
//     record, hold, account, post transfer;
//  3. sqlPlaceHolds does, for every hold, what PlaceHold does for one, except
//     that an account's floor is checked once, for the sum of its new holds.
//
// The outcome of every step is the one PostHold for each settlement and then
// PlaceHold for each hold, in the steps' order, would give. Settlements have
// no guard and only release pending amounts, so they do not depend on their
// order or on the holds. An account that covers the sum of its holds covers
// each of them in turn; when one cannot cover the sum, its holds are taken
// out again and placed one by one with PlaceHold (a second round trip, only
// near an account's limit).
//
// Steps that share a request id (the ledger sends none) run one statement
// per step, in order.
func (t *ledgerTx) Pipeline(ctx context.Context, steps []ledger.Step) error {
	var (
		places              []*ledger.PlaceStep
		posts               []*ledger.PostStep
		placeRows, postRows [][]any
		accounts, postReqs  []string
	)
	seen := make(map[string]bool, len(steps))
	for _, s := range steps {
		var req string
		switch {
		case s.Place != nil:
			args, err := placeArgs(s.Place.Hold, s.Place.Guard, s.Place.Pending)
			if err != nil {
				return err
			}
			req = s.Place.Hold.RequestID
			places, placeRows = append(places, s.Place), append(placeRows, args)
			accounts = append(accounts, s.Place.Hold.AccountID)
		case s.Post != nil:
			args, err := t.postArgs(ctx, s.Post.Record, s.Post.SettleID, s.Post.PendingID, s.Post.Revenue, s.Post.At)
			if err != nil {
				return err
			}
			req = s.Post.Record.RequestID
			posts, postRows = append(posts, s.Post), append(postRows, args)
			postReqs = append(postReqs, req)
		default:
			return errors.New("pipeline: empty step")
		}
		if seen[req] {
			return t.pipelineEach(ctx, steps)
		}
		seen[req] = true
	}
	if len(steps) == 0 {
		return nil
	}
	var b pgx.Batch
	b.Queue(sqlLockAccounts, accounts, postReqs)
	if len(posts) > 0 {
		if errPostHolds != nil {
			return errPostHolds
		}
		args, err := columns(postRows)
		if err != nil {
			return fmt.Errorf("post holds: %w", err)
		}
		b.Queue(sqlPostHolds, args...)
	}
	if len(places) > 0 {
		args, err := columns(placeRows)
		if err != nil {
			return fmt.Errorf("place holds: %w", err)
		}
		b.Queue(sqlPlaceHolds, args...)
	}
	br := t.tx.SendBatch(ctx, &b)
	redo, err := readPipeline(br, places, posts)
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	if err == nil && len(redo) > 0 {
		err = t.placeAgain(ctx, redo)
	}
	if err != nil {
		return fmt.Errorf("pipeline of %d: %w", len(steps), err)
	}
	for _, st := range posts {
		if st.Posted {
			t.Inserted(st.Record) // stored exactly when its hold was posted
		}
	}
	return nil
}

// readPipeline reads the results of Pipeline's batch into its steps and
// returns the holds to place again one by one.
func readPipeline(br pgx.BatchResults, places []*ledger.PlaceStep, posts []*ledger.PostStep) ([]*ledger.PlaceStep, error) {
	if _, err := br.Exec(); err != nil {
		return nil, fmt.Errorf("lock accounts: %w", err)
	}
	if len(posts) > 0 {
		if err := readPosts(br, posts); err != nil {
			return nil, err
		}
	}
	if len(places) == 0 {
		return nil, nil
	}
	return readPlaces(br, places)
}

func readPosts(br pgx.BatchResults, posts []*ledger.PostStep) error {
	rows, err := br.Query()
	if err != nil {
		return fmt.Errorf("post holds: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var ord int64
		var h ledger.Hold
		var cur, state string
		var created, expires, resolved int64
		var updated, transferred bool
		if err := rows.Scan(&ord, &h.RequestID, &h.TenantID, &h.KeyID, &h.AccountID, &h.Amount, &cur, &state, &h.Node,
			&h.Budgets, &created, &expires, &resolved, &updated, &transferred); err != nil {
			return fmt.Errorf("post holds: %w", err)
		}
		if ord < 1 || ord > int64(len(posts)) || posts[ord-1].Posted {
			return fmt.Errorf("post holds: unexpected row %d of %d", ord, len(posts))
		}
		st := posts[ord-1]
		if h.RequestID != st.Record.RequestID {
			return fmt.Errorf("post holds: row %d is hold %s, want %s", ord, h.RequestID, st.Record.RequestID)
		}
		if !updated || !transferred {
			return fmt.Errorf("post hold %s: account %s or transfer %s not written", h.RequestID, h.AccountID, st.SettleID)
		}
		h.Currency, h.State = money.Currency(cur), ledger.HoldPending // as it was, like ResolveHold
		h.CreatedAt, h.ExpiresAt, h.ResolvedAt = fromUnixNanos(created), fromUnixNanos(expires), fromUnixNanos(resolved)
		st.Hold, st.Posted = h, true
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("post holds: %w", err)
	}
	return nil
}

func readPlaces(br pgx.BatchResults, places []*ledger.PlaceStep) ([]*ledger.PlaceStep, error) {
	rows, err := br.Query()
	if err != nil {
		return nil, fmt.Errorf("place holds: %w", err)
	}
	defer rows.Close()
	var redo []*ledger.PlaceStep
	n := 0
	for rows.Next() {
		var ord int64
		var inserted, guarded, updated, transferred bool
		if err := rows.Scan(&ord, &inserted, &guarded, &updated, &transferred); err != nil {
			return nil, fmt.Errorf("place holds: %w", err)
		}
		if n >= len(places) || ord != int64(n+1) {
			return nil, fmt.Errorf("place holds: unexpected row %d of %d", ord, len(places))
		}
		st := places[n]
		n++
		switch {
		case !inserted:
			st.Outcome = ledger.HoldDuplicate
		case !guarded:
			st.Outcome = ledger.HoldRefused // like PlaceHold: the hold row stays for the ledger to delete
		case !updated:
			redo = append(redo, st) // its account did not cover all its holds at once
		case !transferred:
			return nil, fmt.Errorf("place hold %s: transfer %s not written", st.Hold.RequestID, st.Pending.ID)
		default:
			st.Outcome = ledger.HoldPlaced
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("place holds: %w", err)
	}
	if n != len(places) {
		return nil, fmt.Errorf("place holds: %d rows for %d holds", n, len(places))
	}
	return redo, nil
}

// placeAgain removes the holds sqlPlaceHolds inserted on accounts that could
// not cover all their holds at once, and places them again one by one, in
// order, with PlaceHold's statement.
func (t *ledgerTx) placeAgain(ctx context.Context, redo []*ledger.PlaceStep) error {
	ids := make([]string, len(redo))
	for i, st := range redo {
		ids[i] = st.Hold.RequestID
	}
	var b pgx.Batch
	b.Queue(`DELETE FROM ledger_holds WHERE request_id = ANY($1::text[])`, ids)
	for _, st := range redo {
		args, err := placeArgs(st.Hold, st.Guard, st.Pending)
		if err != nil {
			return err
		}
		b.Queue(sqlPlaceHold, args...)
	}
	br := t.tx.SendBatch(ctx, &b)
	defer br.Close()
	tag, err := br.Exec()
	if err != nil {
		return fmt.Errorf("place holds again: %w", err)
	}
	if tag.RowsAffected() != int64(len(ids)) {
		return fmt.Errorf("place holds again: removed %d of %d holds", tag.RowsAffected(), len(ids))
	}
	for _, st := range redo {
		if st.Outcome, err = scanPlace(br.QueryRow(), st.Hold, st.Pending); err != nil {
			return err
		}
	}
	return br.Close()
}

// pipelineEach sends one statement per step (PlaceHold's or PostHold's), in
// order, in one round trip.
func (t *ledgerTx) pipelineEach(ctx context.Context, steps []ledger.Step) error {
	var b pgx.Batch
	for _, s := range steps {
		var args []any
		var err error
		var query string
		switch {
		case s.Place != nil:
			query = sqlPlaceHold
			args, err = placeArgs(s.Place.Hold, s.Place.Guard, s.Place.Pending)
		case s.Post != nil:
			query = sqlPostHold
			args, err = t.postArgs(ctx, s.Post.Record, s.Post.SettleID, s.Post.PendingID, s.Post.Revenue, s.Post.At)
		default:
			err = errors.New("pipeline: empty step")
		}
		if err != nil {
			return err
		}
		b.Queue(query, args...)
	}
	br := t.tx.SendBatch(ctx, &b)
	for _, s := range steps {
		var err error
		switch {
		case s.Place != nil:
			s.Place.Outcome, err = scanPlace(br.QueryRow(), s.Place.Hold, s.Place.Pending)
		case s.Post != nil:
			s.Post.Hold, s.Post.Posted, err = scanPost(br.QueryRow(), s.Post.Record.RequestID, s.Post.SettleID)
			if s.Post.Posted {
				t.Inserted(s.Post.Record)
			}
		}
		if err != nil {
			br.Close()
			return fmt.Errorf("pipeline of %d: %w", len(steps), err)
		}
	}
	if err := br.Close(); err != nil {
		return fmt.Errorf("pipeline of %d: %w", len(steps), err)
	}
	return nil
}

// How the multi-row statements stay cheap whatever the planner estimates
// (a generic plan guesses 10 rows for an unnest, and the statistics of
// ledger_holds lag behind its churn): each input row finds its table row by
// a scalar subquery or a join on a primary key, and each test against an
// earlier step's RETURNING rows is written `x IN (SELECT ... FROM cte)` where
// PostgreSQL cannot turn it into a join, so it runs as one hashed subplan
// instead of a nested loop over the other step's rows (quadratic).

// sqlLockAccounts locks, in byte order of their ids (the ledger's order of
// tenant ids), the accounts of new holds ($1) and of the pending holds being
// settled ($2).
const sqlLockAccounts = `SELECT id FROM ledger_accounts WHERE id IN (
	SELECT unnest($1::text[])
	UNION SELECT account_id FROM ledger_holds WHERE request_id = ANY($2::text[]) AND (state = 'pending') IS TRUE
) ORDER BY id COLLATE "C" FOR UPDATE`

// sqlPlaceHolds is sqlPlaceHold for many holds (the arguments of placeArgs,
// one array per column). It returns, for each hold in order, whether it was
// inserted, passed its own guards (no debt, no record), had its account
// updated and its transfer written. An account's floor is checked once, for
// the sum of its holds that passed; when that fails, none of them moves it.
const sqlPlaceHolds = `WITH i AS (
	SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[], $6::text[], $7::text[],
		$8::text[], $9::text[], $10::bigint[], $11::bigint[], $12::bigint[], $13::boolean[], $14::text[], $15::text[],
		$16::text[], $17::text[], $18::text[])
	WITH ORDINALITY AS i(request_id, tenant_id, key_id, account_id, amount, currency, state, node, budgets,
		created_at, expires_at, resolved_at, floor_guard, not_owing, no_record, transfer_id, credit, kind, ord)
), ins AS (
	INSERT INTO ledger_holds (` + holdCols + `)
	SELECT request_id, tenant_id, key_id, account_id, amount, currency, state, node, budgets, created_at, expires_at,
		resolved_at FROM i ORDER BY ord
	ON CONFLICT (request_id) DO NOTHING RETURNING request_id
), f AS (
	SELECT i.*, i.request_id IN (SELECT request_id FROM ins) AS inserted,
		(i.not_owing = '' OR NOT coalesce((SELECT d.posted_debits > d.posted_credits FROM ledger_accounts d
			WHERE d.id = i.not_owing), false))
		AND (i.no_record = '' OR NOT coalesce((SELECT true FROM usage_records u WHERE u.request_id = i.no_record), false))
		AS guarded
	FROM i
), tot AS (
	SELECT account_id, sum(amount)::bigint AS amount, bool_or(floor_guard) AS floor_guard FROM f
	WHERE inserted AND guarded GROUP BY account_id
), upd AS (
	UPDATE ledger_accounts a SET pending_debits = a.pending_debits + tot.amount FROM tot
	WHERE a.id = tot.account_id
	AND (NOT tot.floor_guard OR a.posted_credits - a.posted_debits - a.pending_debits - tot.amount >= -a.credit_limit)
	RETURNING a.id
), tr AS (
	INSERT INTO ledger_transfers (` + transferCols + `)
	SELECT transfer_id, account_id, credit, amount, currency, kind, 'pending', '', request_id, tenant_id, '', created_at
	FROM f WHERE inserted AND guarded AND (account_id IN (SELECT id FROM upd)) IS TRUE ORDER BY ord
	RETURNING request_id
)
SELECT ord, inserted, inserted AND guarded, account_id IN (SELECT id FROM upd), request_id IN (SELECT request_id FROM tr)
FROM f ORDER BY ord`

// sqlPostHolds is sqlPostHold for many settlements (the arguments of
// postArgs, one array per column). It returns, for each settlement whose
// hold it posted, its position, the hold, and whether the account and the
// transfer were written. Each account is updated once, by the sums of its
// settlements. The hold's state test is wrapped in IS TRUE so that the
// planner finds holds by request id, never by scanning the partial index of
// pending holds.
var sqlPostHolds, errPostHolds = func() (string, error) {
	args := sqlcore.RecordArgTypes()
	args = append(args, int64(0), "", "", "") // at, settle id, pending id, revenue: see postArgs
	casts, err := arrayCasts(args)
	if err != nil {
		return "", fmt.Errorf("post holds: %w", err)
	}
	ps := make([]string, len(args))
	for i, c := range casts {
		ps[i] = fmt.Sprintf("$%d::%s", i+1, c)
	}
	cols := strings.Split(sqlcore.RecordColumns, ",")
	for i := range cols {
		cols[i] = strings.TrimSpace(cols[i])
	}
	recCols := strings.Join(cols, ", ")
	hold := "h." + strings.ReplaceAll(holdCols, ", ", ", h.")
	res := "res." + strings.ReplaceAll(holdCols, ", ", ", res.")
	return `WITH i AS (
	SELECT * FROM unnest(` + strings.Join(ps, ", ") + `)
	WITH ORDINALITY AS i(` + recCols + `, at_ns, settle_id, pending_id, revenue_account, ord)
), rec AS (
	INSERT INTO usage_records (` + recCols + `)
	SELECT ` + recCols + ` FROM i
	WHERE (SELECT h.state = 'pending' FROM ledger_holds h WHERE h.request_id = i.request_id)
	ORDER BY ord
	ON CONFLICT (request_id) DO NOTHING RETURNING request_id
), r AS (
	SELECT request_id, cost_nanos, at_ns, settle_id, pending_id, revenue_account, ord FROM i
	WHERE (request_id IN (SELECT request_id FROM rec)) IS TRUE
), res AS (
	UPDATE ledger_holds h SET state = 'posted', resolved_at = r.at_ns FROM r
	WHERE h.request_id = r.request_id AND (h.state = 'pending') IS TRUE
	RETURNING ` + hold + `, r.cost_nanos AS cost, r.at_ns, r.settle_id, r.pending_id, r.revenue_account, r.ord
), acct AS (
	UPDATE ledger_accounts a SET posted_debits = a.posted_debits + s.post, pending_debits = a.pending_debits - s.held
	FROM (SELECT account_id, sum(LEAST(cost, amount))::bigint AS post, sum(amount)::bigint AS held
		FROM res GROUP BY account_id) s
	WHERE a.id = s.account_id RETURNING a.id
), tr AS (
	INSERT INTO ledger_transfers (` + transferCols + `)
	SELECT settle_id, account_id, revenue_account, LEAST(cost, amount), currency, 'settle', 'post', pending_id,
		request_id, tenant_id, '', at_ns FROM res WHERE (account_id IN (SELECT id FROM acct)) IS TRUE ORDER BY ord
	RETURNING request_id
)
SELECT res.ord, ` + res + `, res.account_id IN (SELECT id FROM acct), res.request_id IN (SELECT request_id FROM tr)
FROM res ORDER BY res.ord`, nil
}()

// arrayCasts returns the PostgreSQL array type for each argument's Go type.
func arrayCasts(args []any) ([]string, error) {
	out := make([]string, len(args))
	for i, a := range args {
		switch a.(type) {
		case string:
			out[i] = "text[]"
		case bool:
			out[i] = "boolean[]"
		case int, int32, int64:
			out[i] = "bigint[]"
		default:
			return nil, fmt.Errorf("argument %d: no array type for %T", i+1, a)
		}
	}
	return out, nil
}

// columns turns rows of arguments, each row of the same Go types (those
// arrayCasts knows), into one array argument per column.
func columns(rows [][]any) ([]any, error) {
	if len(rows) == 0 {
		return nil, nil
	}
	out := make([]any, len(rows[0]))
	for j, first := range rows[0] {
		var err error
		switch first.(type) {
		case string:
			out[j], err = column(rows, j, func(v any) (string, bool) { s, ok := v.(string); return s, ok })
		case bool:
			out[j], err = column(rows, j, func(v any) (bool, bool) { b, ok := v.(bool); return b, ok })
		case int, int32, int64:
			out[j], err = column(rows, j, func(v any) (int64, bool) {
				switch n := v.(type) {
				case int:
					return int64(n), true
				case int32:
					return int64(n), true
				case int64:
					return n, true
				}
				return 0, false
			})
		default:
			err = fmt.Errorf("column %d: no array type for %T", j+1, first)
		}
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

func column[T any](rows [][]any, j int, conv func(any) (T, bool)) ([]T, error) {
	col := make([]T, len(rows))
	for i, r := range rows {
		if len(r) != len(rows[0]) {
			return nil, fmt.Errorf("row %d has %d arguments, want %d", i+1, len(r), len(rows[0]))
		}
		v, ok := conv(r[j])
		if !ok {
			return nil, fmt.Errorf("column %d row %d: %T, want %T", j+1, i+1, r[j], *new(T))
		}
		col[i] = v
	}
	return col, nil
}
