// Command mkcorpus writes the fixed mixed corpus of the tokenizer benchmarks
// from files every Debian machine with Go has: English prose (the GPL-3
// text), Go code (net/http/server.go from GOROOT) and Chinese (msgstr text of
// the zh_CN gettext catalogs), interleaved paragraph by paragraph, about a
// third of the bytes each. The corpus is not committed (licences of the
// translations); its SHA-256 is printed so runs can be compared.
package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"unicode/utf8"
)

const partBytes = 200 << 10 // bytes from each source

func main() {
	out := flag.String("out", "bench/out/tokenize-corpus.txt", "output file")
	lang := flag.String("lang", "mixed", "mixed (English, Go and Chinese), or zh, ja or ko alone (about 200 KB of gettext translations)")
	flag.Parse()
	var err error
	if *lang == "mixed" {
		err = run(*out)
	} else {
		err = runLang(*out, *lang)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "mkcorpus:", err)
		os.Exit(1)
	}
}

func run(out string) error {
	en, err := paragraphs("/usr/share/common-licenses/GPL-3", "\n\n")
	if err != nil {
		return err
	}
	code, err := paragraphs(filepath.Join(runtime.GOROOT(), "src", "net", "http", "server.go"), "\n\n")
	if err != nil {
		return err
	}
	zh, err := translations("/usr/share/locale/zh_CN/LC_MESSAGES", isHan)
	if err != nil {
		return err
	}
	srcs := [][]string{take(en, partBytes), take(code, partBytes), take(zh, partBytes)}
	var b bytes.Buffer
	for i := 0; ; i++ {
		done := true
		for _, s := range srcs {
			if i < len(s) {
				b.WriteString(s[i])
				b.WriteString("\n\n")
				done = false
			}
		}
		if done {
			break
		}
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(out, b.Bytes(), 0o644); err != nil {
		return err
	}
	fmt.Printf("%s: %d bytes, sha256 %x\n", out, b.Len(), sha256.Sum256(b.Bytes()))
	return nil
}

// langs are the catalogs and scripts of the single-language corpora.
var langs = map[string]struct {
	dir  string
	keep func(rune) bool
}{
	"zh": {"/usr/share/locale/zh_CN/LC_MESSAGES", isHan},
	"ja": {"/usr/share/locale/ja/LC_MESSAGES", func(r rune) bool { return r >= 0x3040 && r <= 0x30FF }},
	"ko": {"/usr/share/locale/ko/LC_MESSAGES", func(r rune) bool { return r >= 0xAC00 && r <= 0xD7A3 }},
}

func isHan(r rune) bool { return r >= 0x4E00 && r <= 0x9FFF }

// runLang writes about partBytes of one language's translations, for the
// CJK benchmarks.
func runLang(out, lang string) error {
	l, ok := langs[lang]
	if !ok {
		return fmt.Errorf("unknown -lang %q", lang)
	}
	all, err := translations(l.dir, l.keep)
	if err != nil {
		return err
	}
	// Text reaches the tokenizer as valid UTF-8 (JSON decoding replaces
	// invalid bytes); one Korean catalog has a message in another encoding.
	var ps []string
	for _, p := range all {
		if utf8.ValidString(p) {
			ps = append(ps, p)
		}
	}
	b := []byte(strings.Join(take(ps, partBytes), "\n\n") + "\n")
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(out, b, 0o644); err != nil {
		return err
	}
	fmt.Printf("%s: %d bytes, sha256 %x\n", out, len(b), sha256.Sum256(b))
	return nil
}

func paragraphs(path, sep string) ([]string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var ps []string
	for _, p := range strings.Split(string(data), sep) {
		if p = strings.TrimSpace(p); p != "" {
			ps = append(ps, p)
		}
	}
	return ps, nil
}

// take repeats ps as needed until about n bytes are taken.
func take(ps []string, n int) []string {
	var out []string
	for total := 0; total < n && len(ps) > 0; {
		for _, p := range ps {
			out = append(out, p)
			total += len(p)
			if total >= n {
				break
			}
		}
	}
	return out
}

// translations returns the translations of the .mo catalogs in dir that
// contain a rune keep accepts, in file-name order.
func translations(dir string, keep func(rune) bool) ([]string, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.mo"))
	if err != nil {
		return nil, err
	}
	sort.Strings(files)
	var out []string
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		ms, err := moStrings(data)
		if err != nil {
			continue // not a catalog we can read
		}
		for _, m := range ms {
			if strings.ContainsFunc(m, keep) {
				out = append(out, m)
			}
		}
	}
	if len(out) == 0 {
		return nil, errors.New("no text in the wanted script found in " + dir)
	}
	return out, nil
}

// moStrings returns the translated strings of a GNU .mo file.
func moStrings(data []byte) ([]string, error) {
	if len(data) < 28 {
		return nil, errors.New("short")
	}
	var bo binary.ByteOrder = binary.LittleEndian
	if binary.BigEndian.Uint32(data) == 0x950412de {
		bo = binary.BigEndian
	} else if bo.Uint32(data) != 0x950412de {
		return nil, errors.New("not a .mo file")
	}
	n := int(bo.Uint32(data[8:]))
	tr := int(bo.Uint32(data[16:]))
	var out []string
	for i := 0; i < n; i++ {
		at := tr + 8*i
		if at+8 > len(data) {
			return nil, errors.New("truncated")
		}
		l, off := int(bo.Uint32(data[at:])), int(bo.Uint32(data[at+4:]))
		if off+l > len(data) {
			return nil, errors.New("truncated")
		}
		if s := strings.TrimSpace(string(data[off : off+l])); s != "" && !strings.Contains(s, "Content-Type:") {
			out = append(out, strings.ReplaceAll(s, "\x00", "\n"))
		}
	}
	return out, nil
}
