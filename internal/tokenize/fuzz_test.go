package tokenize

import "testing"

// FuzzRoundTrip checks decode(encode(x)) == x (NFC of x for Qwen) for any
// bytes, that Count agrees with Encode, and that nothing panics.
func FuzzRoundTrip(f *testing.F) {
	for _, s := range []string{"", "hello world", "你好，世界", "'s'T  \n\n x", "\xff\xfe<|im_start|>", "e\u0301", "<｜User｜>12345", "😀👍🏽"} {
		f.Add(s)
	}
	encs := []*Encoding{O200k, CL100k, Qwen2, DeepSeekV3}
	f.Fuzz(func(t *testing.T, s string) {
		for _, e := range encs {
			ids := e.Encode(nil, s)
			if n := e.Count(s); n != len(ids) {
				t.Fatalf("%s: Count = %d, len(Encode) = %d", e.Name(), n, len(ids))
			}
			got, err := e.Decode(ids)
			if err != nil {
				t.Fatalf("%s: %v", e.Name(), err)
			}
			if want := e.normalize(s); string(got) != want {
				t.Fatalf("%s: decode(encode(%q)) = %q", e.Name(), s, got)
			}
		}
		_ = Estimate(s)
	})
}
