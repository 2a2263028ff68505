package keys

import (
	"context"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// ErrLoginExists is returned when a login name is taken.
var ErrLoginExists = errors.New("login name taken")

// Login is a tenant's user who signs in to the web console with a name and a
// password (the operator creates it), as an alternative to an API key.
type Login struct {
	Name      string
	TenantID  string
	Hash      string // PasswordHash of the password
	CreatedAt time.Time
}

// LoginStore keeps logins. Implementations live under internal/store.
type LoginStore interface {
	// CreateLogin stores l, or returns ErrLoginExists.
	CreateLogin(ctx context.Context, l Login) error
	// LoginByName returns the login, or ErrNotFound.
	LoginByName(ctx context.Context, name string) (Login, error)
	// Logins lists a tenant's logins by name.
	Logins(ctx context.Context, tenantID string) ([]Login, error)
	// DeleteLogin removes a login, or returns ErrNotFound.
	DeleteLogin(ctx context.Context, name string) error
}

// Password rules.
const (
	MinPassword   = 12
	MaxPassword   = 256
	pbkdf2Rounds  = 210_000 // OWASP's figure for PBKDF2-HMAC-SHA256
	passwordField = "pbkdf2-sha256"
)

// PasswordHash returns a salted PBKDF2-SHA256 hash of password, as stored:
// "pbkdf2-sha256$rounds$salt$hash".
func PasswordHash(password string) (string, error) {
	if len(password) < MinPassword || len(password) > MaxPassword {
		return "", fmt.Errorf("a password has %d to %d characters", MinPassword, MaxPassword)
	}
	salt := make([]byte, 16)
	_, _ = rand.Read(salt)
	dk, err := pbkdf2.Key(sha256.New, password, salt, pbkdf2Rounds, 32)
	if err != nil {
		return "", err
	}
	enc := base64.RawStdEncoding
	return passwordField + "$" + strconv.Itoa(pbkdf2Rounds) + "$" + enc.EncodeToString(salt) + "$" + enc.EncodeToString(dk), nil
}

// CheckPassword reports whether password matches a PasswordHash, in time
// that does not depend on where they differ.
func CheckPassword(hash, password string) bool {
	parts := strings.Split(hash, "$")
	if len(parts) != 4 || parts[0] != passwordField || len(password) > MaxPassword {
		return false
	}
	rounds, err := strconv.Atoi(parts[1])
	if err != nil || rounds < 1 || rounds > 10_000_000 {
		return false
	}
	enc := base64.RawStdEncoding
	salt, err1 := enc.DecodeString(parts[2])
	want, err2 := enc.DecodeString(parts[3])
	if err1 != nil || err2 != nil || len(want) != 32 {
		return false
	}
	got, err := pbkdf2.Key(sha256.New, password, salt, rounds, len(want))
	return err == nil && subtle.ConstantTimeCompare(got, want) == 1
}
