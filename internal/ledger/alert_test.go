package ledger_test

import (
	"context"
	"fmt"
	"log/slog"
	"regexp"
	"strings"
	"sync"
	"testing"

	"baimo/internal/ledger"
	"baimo/internal/money"
)

// lockedLog is a log sink safe for the committer and the test at once.
type lockedLog struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

var alertLine = regexp.MustCompile(`msg="budget alert" scope=(\S+) subject=(\S+) percent=(\d+)`)

// TestBudgetAlertLoggedOnce: each threshold of a budget is logged and
// posted once per period, however the settlements that cross it arrive:
// many at once (batched by the committer), in a SettleBatch, with and
// without holds, retried, and after a transaction that failed and rolled
// back; with holds in memory and in the store.
func TestBudgetAlertLoggedOnce(t *testing.T) {
	for _, exclusive := range []bool{true, false} {
		t.Run(fmt.Sprintf("exclusive=%v", exclusive), func(t *testing.T) {
			ctx := context.Background()
			logs := &lockedLog{}
			var mu sync.Mutex
			posted := map[string]int{}
			l, fs, _, _ := setup(t, ledger.Options{Exclusive: exclusive, Logger: slog.New(slog.NewTextHandler(logs, nil)),
				OnAlert: func(a ledger.BudgetAlert) {
					mu.Lock()
					defer mu.Unlock()
					posted[fmt.Sprintf("%s:%s:%d", a.Budget.Scope, a.Budget.Subject, a.Percent)]++
				}})
			if err := l.SetBudget(ctx, ledger.Budget{Scope: ledger.ScopeTenant, Subject: "acme", Period: ledger.PeriodMonth,
				Limit: 2 * yuan, Alerts: []int{50, 80, 100}}); err != nil {
				t.Fatal(err)
			}
			if err := l.SetBudget(ctx, ledger.Budget{Scope: ledger.ScopeKey, Subject: "k1", Period: ledger.PeriodDay,
				Limit: yuan, Alerts: []int{90}}); err != nil {
				t.Fatal(err)
			}
			settle := func(id string, cost int64) {
				r := record(id, cost)
				r.KeyID = "k1"
				if _, err := l.Settle(ctx, ledger.Settlement{Record: r}); err != nil {
					t.Errorf("settle %s: %v", id, err)
				}
			}
			// A settlement that crosses 50% in a transaction that rolls
			// back, then succeeds when retried.
			settle("warm", 9*yuan/10)
			fs.set(beforeCommit)
			r := record("cross50", yuan/5)
			r.KeyID = "k1"
			if _, err := l.Settle(ctx, ledger.Settlement{Record: r}); err == nil {
				t.Fatal("the injected fault did not fail the settlement")
			}
			fs.set(noFault)
			settle("cross50", yuan/5)
			settle("cross50", yuan/5) // a retry of a settled request
			// Then many at once, some with holds, some in batches.
			var wg sync.WaitGroup
			for i := range 40 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					id := fmt.Sprintf("c%d", i)
					switch i % 3 {
					case 0:
						if _, err := l.Hold(ctx, ledger.HoldRequest{RequestID: id, TenantID: "acme", KeyID: "k1", Amount: money.New(yuan/20, money.CNY)}); err != nil {
							settle(id, yuan/40) // refused by the budget: settled without its hold
							return
						}
						settle(id, yuan/40)
					case 1:
						settle(id, yuan/40)
					default:
						var ss []ledger.Settlement
						for j := range 2 {
							r := record(fmt.Sprintf("%s-%d", id, j), yuan/80)
							r.KeyID = "k1"
							ss = append(ss, ledger.Settlement{Record: r})
						}
						if _, err := l.SettleBatch(ctx, ss); err != nil {
							t.Errorf("settle batch %s: %v", id, err)
						}
					}
				}()
			}
			wg.Wait()
			// 0.9 + 0.2 + 40 × 0.025 = 2.1 yuan: past every threshold.
			logged := map[string]int{}
			for _, m := range alertLine.FindAllStringSubmatch(logs.String(), -1) {
				logged[m[1]+":"+m[2]+":"+m[3]]++
			}
			want := map[string]int{"tenant:acme:50": 1, "tenant:acme:80": 1, "tenant:acme:100": 1, "key:k1:90": 1}
			if fmt.Sprint(logged) != fmt.Sprint(want) {
				t.Errorf("logged alerts %v, want each once: %v\n%s", logged, want, logs)
			}
			mu.Lock()
			defer mu.Unlock()
			if fmt.Sprint(posted) != fmt.Sprint(want) {
				t.Errorf("posted alerts %v, want each once: %v", posted, want)
			}
		})
	}
}
