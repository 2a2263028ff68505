// Package keys holds the API keys that clients present to the gateway: how
// they are generated, stored (hashed, never in clear) and checked.
package keys

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"slices"
	"time"
)

// SecretPrefix starts every key baimo issues, so leaked keys are recognisable.
const SecretPrefix = "sk-baimo-"

// displayLen is how many characters of a secret are kept for display.
const displayLen = len(SecretPrefix) + 6

// ErrNotFound is returned when no key matches.
var ErrNotFound = errors.New("key not found")

// Key is an API key as stored: its hash, never its secret.
type Key struct {
	ID        string
	Name      string
	Prefix    string    // first characters of the secret, for display
	Hash      string    // hex SHA-256 of the secret
	TenantID  string    // owner; "" means the default tenant
	Models    []string  // allowlist of public model names; empty allows all
	ExpiresAt time.Time // zero means never
	Disabled  bool
	CreatedAt time.Time
}

// Allows reports whether the key may use model.
func (k *Key) Allows(model string) bool {
	return len(k.Models) == 0 || slices.Contains(k.Models, model)
}

// Usable reports whether the key may be used at time now, and if not, why.
func (k *Key) Usable(now time.Time) (bool, string) {
	if k.Disabled {
		return false, "disabled"
	}
	if !k.ExpiresAt.IsZero() && !now.Before(k.ExpiresAt) {
		return false, "expired"
	}
	return true, ""
}

// Store keeps keys. Implementations live under internal/store.
type Store interface {
	CreateKey(ctx context.Context, k Key) error
	ListKeys(ctx context.Context) ([]Key, error)
	// KeyByHash returns the key whose secret hashes to hash, or ErrNotFound.
	KeyByHash(ctx context.Context, hash string) (Key, error)
	// DeleteKey removes the key with id, or returns ErrNotFound.
	DeleteKey(ctx context.Context, id string) error
	// SetKeyDisabled enables or disables the key with id, or returns ErrNotFound.
	SetKeyDisabled(ctx context.Context, id string, disabled bool) error
}

// Generate returns a new random secret and the Key that stores it (without ID,
// name or timestamps, which the caller sets).
func Generate() (secret string, k Key, err error) {
	var b [24]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", Key{}, err
	}
	secret = SecretPrefix + base64.RawURLEncoding.EncodeToString(b[:])
	return secret, Key{Prefix: secret[:displayLen], Hash: Hash(secret)}, nil
}

// NewID returns a unique identifier with the given prefix ("key_", "req_"):
// the time in microseconds, then 8 random bytes, in hex. Ids made later sort
// later, so the stores' unique indexes on them grow at one end instead of
// taking random inserts (which cost SQLite a page read each).
func NewID(prefix string) string {
	var b [15]byte
	binary.BigEndian.PutUint64(b[:8], uint64(time.Now().UnixMicro())<<8)
	_, _ = rand.Read(b[7:]) // crypto/rand.Read never fails on supported platforms
	return prefix + hex.EncodeToString(b[1:])
}

// Hash returns the hex SHA-256 of a secret, as stored.
func Hash(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}
