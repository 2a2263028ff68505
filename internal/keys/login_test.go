package keys

import "testing"

func TestPasswordHash(t *testing.T) {
	h, err := PasswordHash("correct horse battery")
	if err != nil {
		t.Fatal(err)
	}
	h2, _ := PasswordHash("correct horse battery")
	if h == h2 {
		t.Error("two hashes of one password are equal: no salt")
	}
	if !CheckPassword(h, "correct horse battery") || CheckPassword(h, "correct horse battery!") || CheckPassword(h, "") {
		t.Error("CheckPassword is wrong")
	}
	for _, bad := range []string{"", "x", h[:len(h)-4], "pbkdf2-sha256$0$AA$AA", "md5$1$AA$AA"} {
		if CheckPassword(bad, "correct horse battery") {
			t.Errorf("CheckPassword(%q) accepted", bad)
		}
	}
	if _, err := PasswordHash("short"); err == nil {
		t.Error("a short password was hashed")
	}
}
