package ratelimit

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"baimo/internal/clock"
)

// luaCommon is the meter arithmetic of ratelimit.go in Lua. Numbers are
// doubles, exact for the integers involved (all below 2^53); divisions are
// corrected to exact floor and ceiling.
const luaCommon = `
local U = 60000
local function fdiv(a, b)
  local q = math.floor(a / b)
  if q * b > a then q = q - 1 elseif (q + 1) * b <= a then q = q + 1 end
  return q
end
local function cdiv(a, b)
  local q = fdiv(a, b)
  if q * b < a then q = q + 1 end
  return q
end
local function leak(d, t, now, rate)
  if d <= 0 or rate <= 0 then
    if d < 0 then return 0 end
    return d
  end
  local el = now - t
  if el <= 0 then return d end
  if el > U then el = U end
  local x = d - el * rate
  if x < 0 then x = 0 end
  return x
end
local function int(x) return string.format('%d', x) end
`

// acquireScript checks every limit, then commits all or none. KEYS: per
// limit, its hash (rd rt td tt) and its concurrency set. ARGV: now (ms),
// tokens, lease id, lease expiry (ms), n, then per limit rpm, burst, tpm,
// concurrency. Reply: refused kind, refused index (0-based), retry ms, then
// per limit its request and token debts.
var acquireScript = redis.NewScript(luaCommon + `
local now = tonumber(ARGV[1])
local tok = tonumber(ARGV[2])
local lease = ARGV[3]
local lexp = tonumber(ARGV[4])
local n = tonumber(ARGV[5])
local c = tok * U
local refused, ridx, retry = 0, 0, 0
local L, rd, td, rt, tt, out = {}, {}, {}, {}, {}, {}
local function per(i)
  out[2 * i + 2], out[2 * i + 3] = rd[i], td[i]
end
for i = 1, n do
  local a = 5 + (i - 1) * 4
  local l = {rpm = tonumber(ARGV[a + 1]), burst = tonumber(ARGV[a + 2]), tpm = tonumber(ARGV[a + 3]), conc = tonumber(ARGV[a + 4])}
  L[i] = l
  local h = redis.call('HMGET', KEYS[2 * i - 1], 'rd', 'rt', 'td', 'tt')
  rt[i] = tonumber(h[2]) or 0
  tt[i] = tonumber(h[4]) or 0
  rd[i] = leak(tonumber(h[1]) or 0, rt[i], now, l.rpm)
  td[i] = leak(tonumber(h[3]) or 0, tt[i], now, l.tpm)
  per(i)
  if refused == 0 then
    local tolR, tolT = l.burst * U, l.tpm * U
    if l.rpm > 0 and rd[i] + U > tolR then
      refused, ridx, retry = 1, i - 1, cdiv(rd[i] + U - tolR, l.rpm)
    elseif l.tpm > 0 and c > 0 and c > tolT then
      refused, ridx, retry = 2, i - 1, -1
    elseif l.tpm > 0 and c > 0 and td[i] + c > tolT then
      refused, ridx, retry = 2, i - 1, cdiv(td[i] + c - tolT, l.tpm)
    elseif l.conc > 0 then
      redis.call('ZREMRANGEBYSCORE', KEYS[2 * i], '-inf', now)
      if redis.call('ZCARD', KEYS[2 * i]) >= l.conc then
        refused, ridx, retry = 3, i - 1, 1000
      end
    end
  end
end
if refused == 0 then
  for i = 1, n do
    local l = L[i]
    if l.rpm > 0 then rd[i] = rd[i] + U end
    if l.tpm > 0 then td[i] = td[i] + c end
    local k = KEYS[2 * i - 1]
    redis.call('HSET', k, 'rd', int(rd[i]), 'rt', int(math.max(rt[i], now)), 'td', int(td[i]), 'tt', int(math.max(tt[i], now)))
    local ttl = 0
    if l.rpm > 0 then ttl = cdiv(rd[i], l.rpm) end
    if l.tpm > 0 then ttl = math.max(ttl, cdiv(td[i], l.tpm)) end
    redis.call('PEXPIRE', k, int(ttl + U))
    if l.conc > 0 then
      local cs = KEYS[2 * i]
      redis.call('ZADD', cs, int(lexp), lease)
      if redis.call('PTTL', cs) < lexp - now + U then redis.call('PEXPIRE', cs, int(lexp - now + U)) end
    end
    per(i)
  end
end
out[1], out[2], out[3] = refused, ridx, retry
return out
`)

// releaseScript frees concurrency slots and settles token reservations.
// KEYS as for acquire. ARGV: now, lease id, reserved, used, n, then per
// limit tpm and 1 if it has a concurrency limit.
var releaseScript = redis.NewScript(luaCommon + `
local now = tonumber(ARGV[1])
local lease = ARGV[2]
local reserved = tonumber(ARGV[3])
local used = tonumber(ARGV[4])
local n = tonumber(ARGV[5])
for i = 1, n do
  local tpm = tonumber(ARGV[5 + 2 * i - 1])
  if ARGV[5 + 2 * i] == '1' then
    redis.call('ZREM', KEYS[2 * i], lease)
  end
  if tpm > 0 and reserved ~= used then
    local k = KEYS[2 * i - 1]
    local h = redis.call('HMGET', k, 'td', 'tt')
    local t = tonumber(h[2]) or 0
    local d = leak(tonumber(h[1]) or 0, t, now, tpm) + (used - reserved) * U
    if d < 0 then d = 0 end
    if d > tpm * U then d = tpm * U end
    redis.call('HSET', k, 'td', int(d), 'tt', int(math.max(t, now)))
    local want = cdiv(d, tpm) + U
    if redis.call('PTTL', k) < want then redis.call('PEXPIRE', k, int(want)) end
  end
end
return 0
`)

// RedisOptions configure a Redis limiter.
type RedisOptions struct {
	// Client is a *redis.Client (one instance; see Redis), best built with
	// NewRedisClient so that its own dial, read and write timeouts honour
	// Timeout.
	Client redis.Scripter
	Prefix string // key prefix; default "baimo:rl:"
	// FailOpen admits requests (Result.Degraded) when Redis fails; false
	// returns ErrUnavailable instead. Either way the failure is logged.
	FailOpen bool
	// LeaseTTL is how long a concurrency slot lives unless renewed; default
	// 15s. While a request runs, its node renews the slot every RenewEvery,
	// so the TTL bounds how long a slot outlives a node that died or lost
	// Redis without releasing it, whatever the length of the request.
	LeaseTTL time.Duration
	// RenewEvery is how often live slots are renewed and the slots whose
	// release failed are freed again; default LeaseTTL/3.
	RenewEvery time.Duration
	// Timeout bounds each call to Redis (whatever ctx allows); default
	// DefaultRedisTimeout. It is the most a request waits for the limiter
	// when Redis is unreachable.
	Timeout time.Duration
	Clock   clock.Clock  // default clock.Real; all nodes should share NTP time
	Logger  *slog.Logger // default slog.Default()
}

// Defaults of RedisOptions.
const (
	// DefaultRedisTimeout is the limiter's budget per call: well above a
	// healthy Redis round trip (well under a millisecond on a LAN) and a
	// busy node's scheduling delays, small beside a model's time to first
	// token, so failing open costs a request little.
	DefaultRedisTimeout = 50 * time.Millisecond
	// DefaultLeaseTTL is the life of an unrenewed concurrency slot.
	DefaultLeaseTTL = 15 * time.Second
)

// Redis is the Limiter shared by all gateway nodes through one Redis. An
// Acquire is one round trip (EVALSHA of a script that checks every limit
// and commits all or none); a Release is one more, off the request's
// latency path, and is skipped when there is nothing to free or settle.
// The keys of one request are not co-located, so use a single Redis
// instance, not a cluster.
//
// Concurrency slots are members of a sorted set scored by their expiry.
// A node renews the slots of its requests in flight in one round trip
// every RenewEvery (see slots.go), and retries the releases that failed, so
// a slot is freed when its request ends, or at most LeaseTTL after a node
// died, and within RenewEvery of Redis coming back after an outage. Call
// Close to stop the renewals.
type Redis struct {
	opt     RedisOptions
	node    string
	seq     atomic.Uint64
	lastLog atomic.Int64
	slots   slotKeeper
}

var _ Limiter = (*Redis)(nil)

// NewRedis returns a Redis limiter.
func NewRedis(opt RedisOptions) (*Redis, error) {
	if opt.Client == nil {
		return nil, fmt.Errorf("ratelimit: redis client is nil")
	}
	if opt.Prefix == "" {
		opt.Prefix = "baimo:rl:"
	}
	if opt.LeaseTTL <= 0 {
		opt.LeaseTTL = DefaultLeaseTTL
	}
	if opt.RenewEvery <= 0 {
		opt.RenewEvery = opt.LeaseTTL / 3
	}
	if opt.RenewEvery >= opt.LeaseTTL {
		return nil, fmt.Errorf("ratelimit: renew_every %s must be below lease_ttl %s", opt.RenewEvery, opt.LeaseTTL)
	}
	if opt.Timeout <= 0 {
		opt.Timeout = DefaultRedisTimeout
	}
	if opt.Clock == nil {
		opt.Clock = clock.Real{}
	}
	if opt.Logger == nil {
		opt.Logger = slog.Default()
	}
	var id [8]byte
	if _, err := rand.Read(id[:]); err != nil {
		return nil, fmt.Errorf("ratelimit: node id: %w", err)
	}
	r := &Redis{opt: opt, node: hex.EncodeToString(id[:])}
	r.slots.init()
	return r, nil
}

func (r *Redis) keys(limitKeys []string) []string {
	ks := make([]string, 0, 2*len(limitKeys))
	for _, k := range limitKeys {
		ks = append(ks, r.opt.Prefix+k+":h", r.opt.Prefix+k+":c")
	}
	return ks
}

// ctx bounds one call to Redis by the limiter's budget, or by ctx's own
// deadline if that comes first.
func (r *Redis) ctx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, r.opt.Timeout)
}

// Acquire implements Limiter.
func (r *Redis) Acquire(ctx context.Context, req Request) (Result, error) {
	if err := validate(&req); err != nil {
		return Result{}, err
	}
	n := len(req.Limits)
	if n == 0 {
		return Result{Allowed: true}, nil
	}
	now := nowMs(r.opt.Clock, req.Now)
	lease := Lease{n: n, tokens: req.Tokens, id: r.node + ":" + strconv.FormatUint(r.seq.Add(1), 36)}
	names := make([]string, n)
	args := make([]any, 0, 5+4*n)
	args = append(args, now, req.Tokens, lease.id, now+r.opt.LeaseTTL.Milliseconds(), n)
	for i := range req.Limits {
		l := &req.Limits[i]
		names[i] = l.Key
		args = append(args, l.RPM, burstOf(l), l.TPM, l.Concurrency)
		lease.keys[i] = l.Key
		lease.tpm[i] = l.TPM
		lease.conc[i] = l.Concurrency > 0
	}
	cctx, cancel := r.ctx(ctx)
	defer cancel()
	reply, err := acquireScript.Run(cctx, r.opt.Client, r.keys(names), args...).Int64Slice()
	if err == nil && len(reply) != 3+2*n {
		err = fmt.Errorf("reply of %d values, want %d", len(reply), 3+2*n)
	}
	if err != nil {
		return r.failed(err)
	}
	v := verdict{refused: Kind(reply[0]), refusedIdx: int(reply[1]), retryMs: reply[2]}
	if v.refused > KindConcurrency || v.refusedIdx < 0 || v.refusedIdx >= n {
		return r.failed(fmt.Errorf("bad reply %v", reply[:3]))
	}
	for i := range n {
		v.per[i] = perLimit{rd: reply[3+2*i], td: reply[4+2*i]}
	}
	res := result(&req, &v)
	if res.Allowed {
		res.Lease = lease
		r.track(&lease, false)
	}
	return res, nil
}

func (r *Redis) failed(err error) (Result, error) {
	r.logFailure("acquire", err)
	if r.opt.FailOpen {
		return Result{Allowed: true, Degraded: true}, nil
	}
	return Result{}, fmt.Errorf("%w: %v", ErrUnavailable, err)
}

// logFailure logs at most once a second, so an outage does not flood logs.
func (r *Redis) logFailure(op string, err error) {
	now := time.Now().UnixNano()
	last := r.lastLog.Load()
	if now-last < int64(time.Second) || !r.lastLog.CompareAndSwap(last, now) {
		return
	}
	r.opt.Logger.Warn("ratelimit: redis failed", "op", op, "fail_open", r.opt.FailOpen, "err", err)
}

// Release implements Limiter.
func (r *Redis) Release(ctx context.Context, lease *Lease, usedTokens int64) error {
	if lease == nil || lease.n == 0 || lease.released {
		return nil
	}
	if usedTokens < 0 || usedTokens > MaxRate {
		return fmt.Errorf("%w: used tokens %d out of range", ErrInvalid, usedTokens)
	}
	lease.released = true
	r.drop(lease)
	work := false
	for i := range lease.n {
		work = work || lease.conc[i] || (lease.tpm[i] > 0 && usedTokens != lease.tokens)
	}
	if !work {
		return nil
	}
	now := r.opt.Clock.Now().UnixMilli()
	args := make([]any, 0, 5+2*lease.n)
	args = append(args, now, lease.id, lease.tokens, usedTokens, lease.n)
	for i := range lease.n {
		c := "0"
		if lease.conc[i] {
			c = "1"
		}
		args = append(args, lease.tpm[i], c)
	}
	cctx, cancel := r.ctx(ctx)
	defer cancel()
	if err := releaseScript.Run(cctx, r.opt.Client, r.keys(lease.keys[:lease.n]), args...).Err(); err != nil {
		r.logFailure("release", err)
		// Free the slots again at the next renewal; the token settlement
		// is not retried (a refund applied twice would loosen the limit).
		r.track(lease, true)
		return fmt.Errorf("ratelimit: release: %w", err)
	}
	return nil
}
