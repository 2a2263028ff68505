package ratelimit

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// NewRedisClient returns a go-redis client for the limiter at addr whose
// own timeouts honour the limiter's budget per call (timeout; 0 means
// DefaultRedisTimeout): dialling, reading, writing and waiting for a pooled
// connection each give up within it, the per-call context's deadline is
// obeyed, and nothing is retried (the limiter fails open or closed at once
// instead). go-redis's defaults (5 s to dial, five dial attempts, 3 s
// reads, three retries) would keep a request waiting seconds through a
// partition. It also routes go-redis's own log lines through log (see
// RouteRedisLogs).
func NewRedisClient(addr string, timeout time.Duration, log *slog.Logger) *redis.Client {
	if timeout <= 0 {
		timeout = DefaultRedisTimeout
	}
	if log != nil {
		RouteRedisLogs(log)
	}
	return redis.NewClient(&redis.Options{
		Addr:                  addr,
		DialTimeout:           timeout,
		DialerRetries:         1,
		ReadTimeout:           timeout,
		WriteTimeout:          timeout,
		PoolTimeout:           timeout,
		ContextTimeoutEnabled: true,
		MaxRetries:            -1,
	})
}

// RouteRedisLogs sends the lines go-redis logs by itself (failed dials,
// pool trouble) to log at warning level, instead of its default plain-text
// lines on stderr, which would break a JSON log. go-redis has one logger
// for the process, so the last call wins.
func RouteRedisLogs(log *slog.Logger) {
	redis.SetLogger(redisLog{log})
}

// redisLog adapts slog to go-redis's logging interface.
type redisLog struct{ log *slog.Logger }

// Printf implements go-redis's internal.Logging.
func (l redisLog) Printf(ctx context.Context, format string, v ...any) {
	msg := strings.TrimPrefix(fmt.Sprintf(format, v...), "redis: ")
	l.log.WarnContext(ctx, "redis client", "detail", msg)
}
