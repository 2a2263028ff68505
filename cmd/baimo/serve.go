package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"gopkg.in/yaml.v3"

	"baimo/catalog"
	"baimo/internal/alert"
	"baimo/internal/batch"
	"baimo/internal/billing"
	"baimo/internal/channels"
	"baimo/internal/clock"
	"baimo/internal/config"
	"baimo/internal/console"
	"baimo/internal/conversation"
	"baimo/internal/gateway"
	"baimo/internal/httpapi"
	"baimo/internal/keys"
	"baimo/internal/ledger"
	"baimo/internal/money"
	"baimo/internal/price"
	"baimo/internal/provider/ir"
	"baimo/internal/provider/sim"
	"baimo/internal/ratelimit"
	"baimo/internal/responsesapi"
	"baimo/internal/route"
	"baimo/internal/store/postgres"
	"baimo/internal/store/sqlite"
	"baimo/internal/telemetry"
	"baimo/internal/usage"
)

func init() {
	register(command{name: "serve", summary: "run the gateway", run: runServe})
}

func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("serve", stderr)
	addr := fs.String("addr", "127.0.0.1:8080", "address to listen on")
	dataDir := fs.String("data", "./data", "directory for the SQLite database and state")
	cfgPath := fs.String("config", "", "YAML configuration file (optional)")
	logFormat := fs.String("log-format", "text", "log format: text or json")
	pgDSN := fs.String("postgres", os.Getenv("BAIMO_POSTGRES"), "PostgreSQL DSN shared by several gateway nodes (default: SQLite under --data; or BAIMO_POSTGRES)")
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	var h slog.Handler = slog.NewTextHandler(stderr, nil)
	if *logFormat == "json" {
		h = slog.NewJSONHandler(stderr, nil)
	}
	log := slog.New(h)
	startPprof(log)

	cfg := config.Default()
	if *cfgPath != "" {
		var err error
		if cfg, err = config.Load(*cfgPath); err != nil {
			return err
		}
	}
	// inConfig names the configuration in an error found in it after it was
	// read (an exchange rate, a routing policy, the Redis options).
	inConfig := func(err error) error { return configError(*cfgPath, err) }
	if err := os.MkdirAll(*dataDir, 0o700); err != nil {
		return fmt.Errorf("data directory: %w", err)
	}
	adminHash, keepAdminKey, err := adminKey(*dataDir)
	if err != nil {
		return err
	}
	exclusive := *pgDSN == "" // one process on the embedded database: holds in memory
	if exclusive {
		release, err := lockDataDir(*dataDir)
		if err != nil {
			return err
		}
		defer release()
	}
	db, err := openStore(ctx, *pgDSN, *dataDir)
	if err != nil {
		return err
	}
	defer db.Close()

	var upstreams []*gateway.Channel
	fileChannels := slices.Clone(cfg.Channels) // listed read-only next to the stored ones
	for _, c := range cfg.Channels {
		if !c.Active {
			log.Info("channel inactive", "channel", c.Name, "reason", c.InactiveReason)
			continue
		}
		upstreams = append(upstreams, gateway.NewChannel(c))
	}
	var simSrv *http.Server
	if cfg.Sim.On() {
		opt := sim.DefaultOptions()
		opt.TTFT, opt.TPOT, opt.OutputTokens = cfg.Sim.TTFT.D(), cfg.Sim.TPOT.D(), cfg.Sim.OutputTokens
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return fmt.Errorf("simulator: %w", err)
		}
		simSrv = &http.Server{Handler: sim.New(opt), ReadHeaderTimeout: 10 * time.Second}
		go func() { _ = simSrv.Serve(ln) }()
		models := config.ModelMap{}
		mm := opt.MediaModels
		for _, m := range slices.Concat(opt.ChatModels, opt.EmbedModels, mm.Rerank, mm.Image, mm.Transcribe, mm.Speech) {
			models[m] = m
		}
		simChannel := config.Channel{Name: "sim", Kind: config.KindOpenAI, BaseURL: "http://" + ln.Addr().String() + "/v1",
			Models: models, Active: true}
		upstreams = append(upstreams, gateway.NewChannel(simChannel))
		fileChannels = append(fileChannels, simChannel)
		log.Info("simulated upstream started", "models", "sim-chat, sim-embed, sim-rerank, sim-image, sim-whisper, sim-tts", "ttft", opt.TTFT, "tpot", opt.TPOT)
	}

	poolCtx, stopPools := context.WithCancel(context.Background())
	defer stopPools()
	poolChannels, poolMetrics, err := startPools(poolCtx, cfg, log)
	if err != nil {
		return inConfig(err)
	}
	upstreams = append(upstreams, poolChannels...)

	rater, seenVersions, err := newRater(ctx, cfg, *cfgPath, db, log)
	if err != nil {
		return err
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), poolMetrics)
	host, _ := os.Hostname()
	var onAlert func(ledger.BudgetAlert) // the ledger logs each alert once; this posts it
	if cfg.Billing.AlertWebhook != "" {
		hook := alert.NewWebhook(cfg.Billing.AlertWebhook, log)
		defer hook.Close()
		onAlert = func(a ledger.BudgetAlert) { hook.Send(alert.BudgetEvent(a, time.Now())) }
	}
	holdTTL := cfg.Limits.RequestTimeout.D() + 5*time.Minute
	books := ledger.New(db, ledger.Options{Clock: clock.Real{}, Node: host + "/" + *addr, Logger: log,
		HoldTTL: holdTTL, HoldWait: cfg.Limits.StoreTimeout.D(), NodeTimeout: cfg.Billing.NodeTimeout.D(), OnAlert: onAlert, Exclusive: exclusive})
	registerLedgerMetrics(reg, books)
	startedAt := time.Now()
	if res, err := books.Reconcile(ctx, startedAt); err != nil {
		return fmt.Errorf("reconcile holds left by a previous run: %w", err)
	} else if res.Settled+res.Voided > 0 {
		log.Warn("reconciled holds left by a previous run", "settled", res.Settled, "voided", res.Voided)
	}
	if cfg.Billing.LedgerOn() {
		// A fresh install's default tenant takes billing.currency; a tenant
		// left in another currency is a configuration error, said now (its
		// requests get a 403 that says it too).
		if _, err := books.PrepareDefault(ctx, rater.Currency); err != nil {
			return err
		}
		others, err := books.OtherCurrency(ctx, rater.Currency)
		if err != nil {
			return err
		}
		for _, t := range others {
			log.Error("configuration error: a tenant is billed in another currency than billing.currency; its requests are refused until an operator fixes one or the other",
				"tenant", t.ID, "tenant_currency", t.Currency, "billing_currency", rater.Currency, "config", *cfgPath)
		}
	}
	bopt := billing.Options{Rater: rater, Records: db, HoldTTL: holdTTL, StoreTimeout: cfg.Limits.StoreTimeout.D(), Clock: clock.Real{}, Log: log,
		Holds:    billing.HoldRules{MaxChoices: cfg.Limits.MaxChoices},
		Recorder: billing.RecorderOptions{BatchSize: cfg.Usage.BatchSize, QueueSize: cfg.Usage.QueueSize, Delay: cfg.Usage.BatchDelay.D()}}
	if cfg.Billing.LedgerOn() {
		zone, _ := time.LoadLocation(cfg.Billing.FreeTier.TimeZone) // checked by config
		bopt.Books = books
		bopt.FreeTier = &billing.FreeTier{DailyTokens: cfg.Billing.FreeTier.DailyTokens, DailyRequests: cfg.Billing.FreeTier.DailyRequests,
			Zone: zone, Tenants: books, Totals: db, Clock: clock.Real{}}
	} else {
		log.Warn("billing.ledger is off: requests are metered and rated but not charged")
	}
	biller := billing.New(bopt)
	bgCtx, stopBackground := context.WithCancel(context.Background())
	defer stopBackground()
	billed := make(chan struct{})
	go func() {
		defer close(billed)
		biller.Run(bgCtx, billing.NewPriceSync(db, db, rater, seenVersions, time.Second, log), 30*time.Second)
	}()
	var limiter ratelimit.Limiter
	if rl := cfg.RateLimits.Redis; rl != nil && rl.Addr != "" {
		rc := ratelimit.NewRedisClient(rl.Addr, rl.Timeout.D(), log)
		defer rc.Close()
		shared, err := ratelimit.NewRedis(ratelimit.RedisOptions{Client: rc, Prefix: rl.Prefix, FailOpen: rl.FailOpen,
			Logger: log, Timeout: rl.Timeout.D(), LeaseTTL: rl.LeaseTTL.D()})
		if err != nil {
			return inConfig(fmt.Errorf("rate_limits.redis: %w", err))
		}
		defer shared.Close()
		limiter = shared
		log.Info("rate limits shared through Redis", "addr", rl.Addr, "fail_open", rl.FailOpen)
	}
	if cfg.RateLimits.PerNode(!exclusive) {
		log.Warn("rate limits are per node: several nodes may share this PostgreSQL, but rate_limits.redis is not set, so each node counts only its own requests")
	}
	routes, replicator, err := newRoutes(ctx, cfg, upstreams, db, exclusive, host+"/"+*addr, log)
	if err != nil {
		return inConfig(err)
	}
	tel, err := telemetry.New(cfg.Telemetry, telemetry.Options{Rate: rater.RateRecord, Log: log})
	if err != nil {
		return inConfig(err)
	}
	defer tel.Close() // after the drain below: the last requests' spans go too
	gw, err := gateway.New(gateway.Options{
		Channels: upstreams, Keys: db, Billing: biller, Clock: clock.Real{}, Log: log, Limits: cfg.Limits,
		Metrics: gateway.NewMetrics(reg), Telemetry: tel, Routing: cfg.Routing, RateLimits: cfg.RateLimits, Counter: gateway.Tokenizer{},
		AuditEvery: cfg.Usage.AuditEvery, Limiter: limiter, Router: routes, FreeTier: freeTier(books),
	})
	if err != nil {
		return inConfig(err)
	}
	replicated := make(chan struct{})
	if replicator != nil {
		go func() { defer close(replicated); replicator.Run(bgCtx, gw.Router()) }()
	} else {
		close(replicated)
	}
	// Channels added at run time (the console, the admin API) are stored
	// with the others' data and served next to the file's; every node
	// reloads them within a second of a change.
	chans := channels.New(db, fileChannels, gw, channels.Options{Log: log})
	if err := chans.Load(ctx); err != nil {
		return fmt.Errorf("stored channels: %w", err)
	}
	// Say now, with the fix, what requests would be refused for or rated
	// with: every channel served, the file's and the stored ones.
	var served []price.Served
	for _, ch := range gw.Channels() {
		for pub, up := range ch.Models {
			served = append(served, price.Served{Model: pub, Upstream: up, Channel: ch.Name})
		}
	}
	check := rater.Catalog.CheckServed(served, rater.Currency, rater.Rates, rater.Free, time.Now())
	if p := check.Problem(); p != "" {
		log.Warn(p)
	}
	for _, n := range check.Notes() {
		log.Info(n)
	}
	synced := make(chan struct{})
	go func() { defer close(synced); chans.Run(bgCtx, time.Second) }()
	defer func() { stopBackground(); <-synced }()
	gateway.Preload(gw.Models())
	stopProbes, err := startProbes(ctx, cfg, gw, log)
	if err != nil {
		return inConfig(err)
	}
	defer stopProbes()
	batches, stopBatches, err := startBatches(cfg, db, gw, biller, exclusive, *dataDir, host+"/"+*addr, log, reg)
	if err != nil {
		return err
	}
	var stopping atomic.Bool
	api := &httpapi.Server{Batches: batches, GW: gw, Store: db, AdminKeyHash: adminHash, Clock: clock.Real{}, Log: log, Gatherer: reg,
		Ready:   func() bool { return !stopping.Load() },
		Billing: &httpapi.Billing{Ledger: books, Store: db, AuditGrace: time.Minute},
		Prices: &httpapi.Prices{Catalog: rater.Catalog, Store: db, Currency: rater.Currency, Rates: rater.Rates,
			Lists: db, Rater: rater,
			CountPrompt: func(model string, body []byte) (int64, bool) {
				n, src := gateway.Tokenizer{}.CountBody(ir.FormatOpenAI, model, body)
				return n, src == usage.SourceCounted
			},
			Lead: price.LeadFor(!exclusive)},
	}
	if replicator != nil {
		api.RoutingEvents = replicator
	}
	responses := responsesapi.New(responsesapi.Options{Gateway: gw, Store: db, Clock: clock.Real{}, Log: log,
		MaxBody: cfg.Limits.MaxBodyBytes, StaleAfter: cfg.Limits.RequestTimeout.D() + time.Minute,
		Retention: cfg.Responses.Retention.D(), StoreTimeout: cfg.Limits.StoreTimeout.D() + 3*time.Second})
	api.Responses = responses
	go responses.Run(bgCtx, time.Hour)
	if !cfg.Console.Disabled {
		con, err := newConsole(ctx, cfg, db, rater, adminHash, chans, log)
		if err != nil {
			return err
		}
		api.Console = con
	}
	srv := &http.Server{
		Handler:           api.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       2 * time.Minute,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    1 << 20,
		ErrorLog:          slog.NewLogLogger(h, slog.LevelWarn),
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	// Everything the configuration decides has been built and the address
	// is ours: only now is a generated admin key kept and shown, so that a
	// start that fails keeps no key nobody saw.
	if err := keepAdminKey(stdout); err != nil {
		ln.Close()
		return err
	}
	log.Info("baimo listening", "addr", ln.Addr().String(), "data", *dataDir, "models", strings.Join(gw.Models(), ", "))
	fmt.Fprintf(stdout, "baimo listening on http://%s\n", ln.Addr().String())
	if !cfg.Console.Disabled {
		fmt.Fprintf(stdout, "console on http://%s/ui/ (sign in with the admin key)\n", ln.Addr().String())
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()

	select {
	case err := <-serveErr:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	// Graceful shutdown: stop taking connections, let in-flight streams finish
	// (bounded), then write every queued usage record.
	stopping.Store(true)
	log.Info("shutting down", "timeout", cfg.Limits.ShutdownTimeout.D())
	sctx, cancel := context.WithTimeout(context.Background(), cfg.Limits.ShutdownTimeout.D())
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		log.Warn("in-flight requests cut at the shutdown timeout", "err", err)
		_ = srv.Close()
	}
	dctx, dcancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer dcancel()
	stopBatches(dctx)
	if err := gw.Drain(dctx); err != nil {
		log.Error("requests still running after close", "err", err)
	}
	if err := responses.Drain(dctx); err != nil {
		log.Error("background responses still being stored after close", "err", err)
	}
	if simSrv != nil {
		_ = simSrv.Close()
	}
	rctx, rcancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer rcancel()
	if err := biller.Close(rctx); err != nil {
		return fmt.Errorf("usage records: %w", err)
	}
	stopBackground()
	<-billed
	<-replicated
	if err := books.Close(); err != nil {
		return fmt.Errorf("ledger: %w", err)
	}
	log.Info("stopped; all usage records written")
	return nil
}

// newConsole builds the web console over the store's reports, the catalog
// and the channels.
func newConsole(ctx context.Context, cfg *config.Config, db store, rater *billing.Rater, adminHash string,
	chans *channels.Manager, log *slog.Logger) (*console.Console, error) {
	zone, err := time.LoadLocation(cfg.Console.TimeZone) // checked by config
	if err != nil {
		return nil, err
	}
	// The rollups keep the reporting zone's days, so that day reports read
	// day sums (from the next midnight on).
	if err := db.SetReportZone(ctx, zone, time.Now()); err != nil {
		return nil, err
	}
	return console.New(console.Options{Clock: clock.Real{}, Log: log, Zone: zone, AdminKeyHash: adminHash, Keys: db, Logins: db,
		Reports: db, Catalog: rater.Catalog, Currency: rater.Currency, Rates: rater.Rates, Channels: chans,
		Secure: cfg.Console.SecureCookies, Billing: cfg.Billing.LedgerOn()})
}

// startProbes runs the active health probes of routing.probes, if any,
// until ctx ends or stop is called; stop waits for the probes in flight.
func startProbes(ctx context.Context, cfg *config.Config, gw *gateway.Gateway, log *slog.Logger) (stop func(), err error) {
	if cfg.Routing.Probes == nil {
		return func() {}, nil
	}
	pc := cfg.Routing.Probes.Route()
	// The probe is a GET of the vendor's model list: it costs no tokens.
	p, err := route.NewProber(gw.Router(), pc, gateway.Probe(gateway.NewTransport(pc.Timeout)), route.ProberOptions{Logger: log})
	if err != nil {
		return nil, fmt.Errorf("routing.probes: %w", err)
	}
	pctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); p.Run(pctx) }()
	return func() { cancel(); <-done }, nil
}

// store is everything serve keeps in its database.
type store interface {
	keys.Store
	usage.Store
	price.Store
	price.ListStore
	ledger.Store
	route.EventStore
	channels.Store
	keys.LoginStore
	usage.Reporter
	conversation.Store
	SetReportZone(ctx context.Context, zone *time.Location, now time.Time) error
	BatchStore() batch.Store
	BatchBlobs() batch.Blobs
	Ping(ctx context.Context) error
	Close() error
}

// openStore opens PostgreSQL when a DSN is given (several nodes share it),
// else the embedded SQLite database under dataDir.
func openStore(ctx context.Context, dsn, dataDir string) (store, error) {
	if dsn != "" {
		return postgres.Open(ctx, dsn)
	}
	return sqlite.Open(ctx, filepath.Join(dataDir, "baimo.db"))
}

// newRoutes returns, for nodes sharing a store (not exclusive), a router
// whose parks are appended to the store's routing events and a replicator
// that applies other nodes' events, started at the current end of the log:
// events from before this node started are not replayed (a park replayed
// would restart its timer here; traffic finds a bad key again at the cost of
// one retried attempt). A single node on its own store needs neither and
// gets nil, nil: the gateway builds its router itself.
func newRoutes(ctx context.Context, cfg *config.Config, channels []*gateway.Channel, st store, exclusive bool,
	node string, log *slog.Logger) (*route.Router, *route.Replicator, error) {
	if exclusive {
		return nil, nil, nil
	}
	rep, err := route.NewReplicator(st, route.ReplicatorOptions{Node: node, Clock: clock.Real{}, Logger: log})
	if err != nil {
		return nil, nil, err
	}
	r, err := route.New(gateway.RouteConfig(cfg.Routing, channels), route.Options{Clock: clock.Real{}, Logger: log,
		OnPark: rep.OnPark})
	if err != nil {
		return nil, nil, fmt.Errorf("routing: %w", err)
	}
	if err := rep.Start(ctx); err != nil {
		return nil, nil, err
	}
	log.Info("routing events shared with the other nodes", "node", node)
	return r, rep, nil
}

// newRater loads the shipped catalog, replays the price versions added through
// the admin API, and sets the billing currency, free models and exchange
// rates. It returns the ids of the versions replayed.
func newRater(ctx context.Context, cfg *config.Config, cfgPath string, st store, log *slog.Logger) (*billing.Rater, map[string]bool, error) {
	cat, err := catalog.Load()
	if err != nil {
		return nil, nil, fmt.Errorf("price catalog: %w", err)
	}
	seen, err := billing.ReplayVersions(ctx, cat, st, log)
	if err != nil {
		return nil, nil, err
	}
	r := &billing.Rater{Catalog: cat, Currency: money.Currency(cfg.Billing.Currency), Free: map[string]bool{}}
	if err := r.LoadPriceLists(ctx, st); err != nil {
		log.Warn("price lists", "err", err)
	}
	for _, m := range cfg.Billing.FreeModels {
		r.Free[m] = true
	}
	if cfg.Billing.ExchangeRates.Kind != 0 {
		b, err := yaml.Marshal(&cfg.Billing.ExchangeRates)
		if err != nil {
			return nil, nil, configError(cfgPath, fmt.Errorf("billing.exchange_rates: %w", err))
		}
		if r.Rates, err = price.ParseExchangeRates(b); err != nil {
			return nil, nil, configError(cfgPath, fmt.Errorf("billing.exchange_rates: %w", err))
		}
	}
	// The configured rates lie over the catalog's reference table.
	r.Rates = r.Rates.Over(cat.ReferenceRates())
	return r, seen, nil
}

// registerLedgerMetrics exports the ledger's counters.
func registerLedgerMetrics(reg *prometheus.Registry, books *ledger.Ledger) {
	reg.MustRegister(
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "baimo_ledger_batches_total",
			Help: "Group-committed ledger transactions (holds, settlements, voids)."},
			func() float64 { return float64(books.Stats().Batches) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "baimo_ledger_operations_total",
			Help: "Holds, settlements and voids in those transactions."},
			func() float64 { return float64(books.Stats().Ops) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "baimo_ledger_queued",
			Help: "Ledger operations waiting for the committer."},
			func() float64 { return float64(books.Stats().Queued) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "baimo_ledger_holds_in_memory",
			Help: "Holds of requests in flight kept in memory (a single node on SQLite)."},
			func() float64 { return float64(books.Stats().HeldInMemory) }),
	)
}

// adminKey returns the hash of the admin key: BAIMO_ADMIN_KEY if set, the
// one kept (hashed) in the data directory, or else a new one. A new key is
// kept and shown only when keep is called, once the gateway is ready to
// serve: a first start that fails must not store the hash of a key that was
// never shown.
func adminKey(dataDir string) (hash string, keep func(stdout io.Writer) error, err error) {
	nothing := func(io.Writer) error { return nil }
	if k := os.Getenv("BAIMO_ADMIN_KEY"); k != "" {
		return keys.Hash(k), nothing, nil
	}
	path := filepath.Join(dataDir, "admin_key.sha256")
	if b, err := os.ReadFile(path); err == nil {
		return strings.TrimSpace(string(b)), nothing, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", nil, fmt.Errorf("admin key: %w", err)
	}
	var b [24]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", nil, err
	}
	secret := "sk-baimo-admin-" + base64.RawURLEncoding.EncodeToString(b[:])
	h := keys.Hash(secret)
	return h, func(stdout io.Writer) error {
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return fmt.Errorf("admin key: %w", err)
		}
		if _, err := f.WriteString(h + "\n"); err != nil {
			f.Close()
			return fmt.Errorf("admin key: %w", err)
		}
		if err := f.Close(); err != nil {
			return fmt.Errorf("admin key: %w", err)
		}
		fmt.Fprintf(stdout, "\nGenerated the admin key (shown once; set BAIMO_ADMIN_KEY to choose your own):\n\n  %s\n\n", secret)
		return nil
	}, nil
}

// configError names the configuration file (path; "" for the built-in
// defaults) in an error found in it after it was read.
func configError(path string, err error) error {
	if path == "" {
		return fmt.Errorf("configuration (built-in defaults): %w", err)
	}
	return fmt.Errorf("config %s: %w", path, err)
}
