package audio

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"
	"time"
)

// The files below are built byte by byte from each container's
// specification, with known durations.

func wavFile(rate, channels, bits int, seconds float64, declared uint32) []byte {
	byteRate := rate * channels * bits / 8
	n := int(float64(byteRate) * seconds)
	var b bytes.Buffer
	b.WriteString("RIFF")
	_ = binary.Write(&b, binary.LittleEndian, uint32(36+n))
	b.WriteString("WAVEfmt ")
	for _, v := range []any{uint32(16), uint16(1), uint16(channels), uint32(rate), uint32(byteRate),
		uint16(channels * bits / 8), uint16(bits)} {
		_ = binary.Write(&b, binary.LittleEndian, v)
	}
	b.WriteString("LIST")
	_ = binary.Write(&b, binary.LittleEndian, uint32(3))
	b.WriteString("abc\x00") // an odd chunk, padded
	b.WriteString("data")
	if declared == 1 {
		declared = uint32(n)
	}
	_ = binary.Write(&b, binary.LittleEndian, declared)
	b.Write(make([]byte, n))
	return b.Bytes()
}

func flacFile(rate int, total uint64) []byte {
	si := make([]byte, 34)
	si[10] = byte(rate >> 12)
	si[11] = byte(rate >> 4)
	si[12] = byte(rate<<4) | 0x01<<1 // 2 channels
	si[13] = 0xF0 | byte(total>>32)
	binary.BigEndian.PutUint32(si[14:18], uint32(total))
	b := append([]byte("fLaC"), 0x80, 0, 0, 34) // last metadata block, STREAMINFO, 34 bytes
	b = append(b, si...)
	return append(b, make([]byte, 100)...)
}

func oggPage(granule int64, serial uint32, body []byte) []byte {
	h := make([]byte, 27)
	copy(h, "OggS")
	binary.LittleEndian.PutUint64(h[6:14], uint64(granule))
	binary.LittleEndian.PutUint32(h[14:18], serial)
	var segs []byte
	n := len(body)
	for n >= 255 {
		segs = append(segs, 255)
		n -= 255
	}
	segs = append(segs, byte(n))
	h[26] = byte(len(segs))
	return append(append(h, segs...), body...)
}

func vorbisFile(rate int, lastGranule int64) []byte {
	id := make([]byte, 30)
	copy(id, "\x01vorbis")
	binary.LittleEndian.PutUint32(id[12:16], uint32(rate))
	b := oggPage(0, 7, id)
	b = append(b, oggPage(0, 7, make([]byte, 300))...)
	b = append(b, oggPage(lastGranule/2, 7, make([]byte, 600))...)
	b = append(b, oggPage(999999999, 8, make([]byte, 10))...) // another stream: not counted
	return append(b, oggPage(lastGranule, 7, make([]byte, 600))...)
}

func opusFile(preSkip uint16, lastGranule int64) []byte {
	id := make([]byte, 19)
	copy(id, "OpusHead")
	id[8] = 1
	binary.LittleEndian.PutUint16(id[10:12], preSkip)
	b := oggPage(0, 3, id)
	return append(b, oggPage(lastGranule, 3, make([]byte, 100))...)
}

func box(typ string, body []byte) []byte {
	b := make([]byte, 8, 8+len(body))
	binary.BigEndian.PutUint32(b, uint32(8+len(body)))
	copy(b[4:], typ)
	return append(b, body...)
}

func mp4File(scale, dur uint32, moovFirst bool) []byte {
	mv := make([]byte, 100)
	binary.BigEndian.PutUint32(mv[12:16], scale)
	binary.BigEndian.PutUint32(mv[16:20], dur)
	moov := box("moov", append(box("mvhd", mv), box("trak", make([]byte, 50))...))
	ftyp := box("ftyp", []byte("M4A \x00\x00\x00\x00isomM4A "))
	mdat := box("mdat", make([]byte, 5000))
	if moovFirst {
		return append(append(ftyp, moov...), mdat...)
	}
	return append(append(ftyp, mdat...), moov...)
}

// mp3Frames is n MPEG-1 Layer III frames at 128 kb/s, 44.1 kHz (1,152
// samples each), after an ID3v2 tag, with a Xing header in a first frame
// when xing > 0.
func mp3Frames(n int, xing uint32) []byte {
	var b bytes.Buffer
	b.Write([]byte{'I', 'D', '3', 3, 0, 0, 0, 0, 0x02, 0x01}) // a 257-byte tag
	b.Write(make([]byte, 257))
	frame := func(pad bool) []byte {
		h := []byte{0xFF, 0xFB, 0x90, 0x64}
		l := 417
		if pad {
			h[2] |= 0x02
			l = 418
		}
		f := make([]byte, l)
		copy(f, h)
		return f
	}
	if xing > 0 {
		f := frame(false)
		copy(f[4+32:], "Xing")
		binary.BigEndian.PutUint32(f[4+32+4:], 1)
		binary.BigEndian.PutUint32(f[4+32+8:], xing)
		b.Write(f)
	}
	for i := 0; i < n; i++ {
		b.Write(frame(i%3 == 2))
	}
	b.WriteString("TAG")
	b.Write(make([]byte, 125))
	return b.Bytes()
}

func TestRead(t *testing.T) {
	ms := time.Millisecond
	for _, c := range []struct {
		name string
		file []byte
		f    Format
		want time.Duration
	}{
		{"wav 16 kHz mono 2.5 s", wavFile(16000, 1, 16, 2.5, 1), WAV, 2500 * ms},
		{"wav 44.1 kHz stereo 1 s", wavFile(44100, 2, 16, 1, 1), WAV, time.Second},
		{"wav streamed (size 0)", wavFile(8000, 1, 8, 3, 0), WAV, 3 * time.Second},
		{"wav truncated", wavFile(8000, 1, 8, 3, 8000*10)[:44+12+8000], WAV, time.Second},
		{"flac 48 kHz 90 s", flacFile(48000, 48000*90), FLAC, 90 * time.Second},
		{"vorbis 44.1 kHz", vorbisFile(44100, 44100*7), Ogg, 7 * time.Second},
		{"opus with pre-skip", opusFile(312, 48000*5+312), Ogg, 5 * time.Second},
		{"m4a moov after mdat", mp4File(1000, 61500, false), MP4, 61500 * ms},
		{"m4a moov first", mp4File(44100, 44100*2, true), MP4, 2 * time.Second},
		{"mp3 cbr", mp3Frames(100, 0), MP3, span(100*1152, 44100)},
		// A Xing header's frame count is what the file claims: the frames it
		// holds are counted (the header's own frame holds no audio).
		{"mp3 xing claims more", mp3Frames(10, 5000), MP3, span(10*1152, 44100)},
		{"mp3 xing claims fewer", mp3Frames(400, 1), MP3, span(400*1152, 44100)},
	} {
		info, err := Read(bytes.NewReader(c.file))
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if info.Format != c.f || info.Duration != c.want {
			t.Errorf("%s: %s %s, want %s %s", c.name, info.Format, info.Duration, c.f, c.want)
		}
	}
}

func TestSeconds(t *testing.T) {
	for d, want := range map[time.Duration]int64{time.Second: 1, time.Second + 1: 2, 2500 * time.Millisecond: 3, 1: 1} {
		if got := (Info{Duration: d}).Seconds(); got != want {
			t.Errorf("Seconds(%s) = %d, want %d", d, got, want)
		}
	}
}

func TestReadRefuses(t *testing.T) {
	for name, file := range map[string][]byte{
		"empty":           nil,
		"text":            []byte("hello, this is not audio at all"),
		"webm":            {0x1A, 0x45, 0xDF, 0xA3, 0, 0, 0, 0, 0, 0, 0, 0},
		"flac no samples": flacFile(48000, 0),
		"m4a no moov":     box("ftyp", []byte("M4A isom")),
		"mp4 zero scale":  mp4File(0, 100, true),
		"wav no fmt":      append([]byte("RIFF\x00\x00\x00\x00WAVEdata\x04\x00\x00\x00"), 1, 2, 3, 4),
		"ogg no codec":    oggPage(100, 1, []byte("\x01theora...")),
		"mp3 no frames":   append([]byte{'I', 'D', '3', 3, 0, 0, 0, 0, 0, 4}, []byte("abcdxxxxxxxx")...),
		"too long":        flacFile(1, 1<<35),
		"wav byte rate raised": func() []byte {
			b := wavFile(8000, 1, 16, 2, 1)
			binary.LittleEndian.PutUint32(b[28:32], 16000*100) // 100 times the truth: 2 s would read as 0.02 s
			return b
		}(),
		"wav block size short": func() []byte {
			b := wavFile(8000, 2, 16, 2, 1)
			binary.LittleEndian.PutUint16(b[32:34], 2) // two 16-bit channels need 4 bytes a frame
			return b
		}(),
		"wav no channels": func() []byte {
			b := wavFile(8000, 1, 16, 2, 1)
			binary.LittleEndian.PutUint16(b[22:24], 0)
			return b
		}(),
	} {
		if info, err := Read(bytes.NewReader(file)); err == nil {
			t.Errorf("%s: read as %+v", name, info)
		} else if !errors.Is(err, ErrUnsupported) && !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: untyped error %v", name, err)
		}
	}
}

// FuzzRead: any bytes are read or refused, never a panic, and a duration
// read is within bounds.
func FuzzRead(f *testing.F) {
	for _, s := range [][]byte{wavFile(8000, 1, 8, 0.5, 1), flacFile(8000, 800), vorbisFile(8000, 800), opusFile(0, 960),
		mp4File(10, 5, false), mp3Frames(3, 0), mp3Frames(1, 9)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		info, err := Read(bytes.NewReader(b))
		if err == nil && (info.Duration <= 0 || info.Duration > maxDuration) {
			t.Fatalf("duration %s", info.Duration)
		}
	})
}
