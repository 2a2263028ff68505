// Package audio reads the duration of an audio file from the file itself,
// for billing speech-to-text per second: WAV (RIFF), MP3 (MPEG audio, with
// or without a Xing, Info or VBRI header), FLAC, Ogg (Vorbis and Opus) and
// M4A/MP4 (ISO base media). It reads the container's own figures (sample
// counts, granule positions, a movie header's duration), never guesses from
// a file name or a client's word, and needs no decoder: one pass over the
// bytes, in bounded memory, with integer arithmetic only.
//
// Written here rather than taken from a module: the widely used Go audio
// modules decode (and pull in codecs) or read tags only; what billing needs
// is a few hundred lines of header parsing that can be fuzzed and bounded
// (every length a file claims is checked against a limit before it is
// trusted).
package audio

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"time"
)

// Format names a container.
type Format string

// The formats read.
const (
	WAV  Format = "wav"
	MP3  Format = "mp3"
	FLAC Format = "flac"
	Ogg  Format = "ogg"
	MP4  Format = "mp4"
)

// ErrUnsupported says the file is not in a format this package reads.
var ErrUnsupported = errors.New("audio: not a WAV, MP3, FLAC, Ogg or M4A/MP4 file")

// ErrMalformed says the file's headers do not give its duration.
var ErrMalformed = errors.New("audio: the file's headers do not give its duration")

// Info is what Read learns of a file.
type Info struct {
	Format   Format
	Duration time.Duration
}

// Seconds is the duration in whole seconds, rounded up: what a request is
// billed for.
func (i Info) Seconds() int64 {
	return int64((i.Duration + time.Second - 1) / time.Second)
}

// Limits on what a file may claim.
const (
	maxBox       = 64 << 20 // an MP4 moov box read whole
	maxDuration  = 24 * time.Hour
	maxResyncMP3 = 64 << 10 // bytes scanned for an MP3 frame sync before giving up
)

// Read reads a file's format and duration from r, in one pass.
func Read(r io.Reader) (Info, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	head, err := br.Peek(12)
	if err != nil && len(head) < 4 {
		return Info{}, ErrUnsupported
	}
	var info Info
	switch {
	case bytes.HasPrefix(head, []byte("RIFF")) && len(head) >= 12 && string(head[8:12]) == "WAVE":
		info.Format = WAV
		info.Duration, err = wavDuration(br)
	case bytes.HasPrefix(head, []byte("fLaC")):
		info.Format = FLAC
		info.Duration, err = flacDuration(br)
	case bytes.HasPrefix(head, []byte("OggS")):
		info.Format = Ogg
		info.Duration, err = oggDuration(br)
	case len(head) >= 8 && (string(head[4:8]) == "ftyp" || string(head[4:8]) == "moov"):
		info.Format = MP4
		info.Duration, err = mp4Duration(br)
	case bytes.HasPrefix(head, []byte("ID3")) || (head[0] == 0xFF && head[1]&0xE0 == 0xE0):
		info.Format = MP3
		info.Duration, err = mp3Duration(br)
	default:
		return Info{}, ErrUnsupported
	}
	if err != nil {
		return Info{}, err
	}
	if info.Duration <= 0 || info.Duration > maxDuration {
		return Info{}, fmt.Errorf("%w: a duration of %s", ErrMalformed, info.Duration)
	}
	return info, nil
}

// span is n samples at rate per second, as a duration, without overflow
// for any rate up to 2^32 and n up to 2^36.
func span(n, rate uint64) time.Duration {
	if rate == 0 {
		return 0
	}
	sec := n / rate
	rem := n % rate
	if sec > uint64(maxDuration/time.Second)+1 {
		return maxDuration + time.Second
	}
	return time.Duration(sec)*time.Second + time.Duration(rem*uint64(time.Second)/rate)
}

// skip discards n bytes.
func skip(r io.Reader, n int64) error {
	got, err := io.CopyN(io.Discard, r, n)
	if got < n && err == nil {
		err = io.ErrUnexpectedEOF
	}
	return err
}

// wavDuration reads a RIFF WAVE file: the fmt chunk's byte rate and the
// data chunk's size, bounded by the bytes present.
func wavDuration(r *bufio.Reader) (time.Duration, error) {
	if err := skip(r, 12); err != nil {
		return 0, ErrMalformed
	}
	var byteRate uint32
	var hdr [8]byte
	for {
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			return 0, ErrMalformed
		}
		id, size := string(hdr[:4]), int64(binary.LittleEndian.Uint32(hdr[4:]))
		switch id {
		case "fmt ":
			if size < 16 || size > 1<<10 {
				return 0, ErrMalformed
			}
			fmtChunk := make([]byte, size)
			if _, err := io.ReadFull(r, fmtChunk); err != nil {
				return 0, ErrMalformed
			}
			byteRate = binary.LittleEndian.Uint32(fmtChunk[8:12])
			if !consistentPCM(fmtChunk) {
				return 0, fmt.Errorf("%w: the WAV's byte rate is not its sample rate times its block size", ErrMalformed)
			}
			if size%2 == 1 {
				_ = skip(r, 1)
			}
		case "data":
			if byteRate == 0 {
				return 0, ErrMalformed
			}
			// Streamed WAVs declare 0 or 0xFFFFFFFF: the bytes present count.
			n, _ := io.CopyN(io.Discard, r, size)
			if size == 0 || size == 0xFFFFFFFF {
				more, _ := io.Copy(io.Discard, r)
				n += more
			}
			return span(uint64(n), uint64(byteRate)), nil
		default:
			if err := skip(r, size+size%2); err != nil {
				return 0, ErrMalformed
			}
		}
	}
}

// consistentPCM reports whether an uncompressed WAV's fmt chunk agrees
// with itself: its byte rate is its sample rate times its block size, and
// its block size covers every channel. A header that says otherwise (a byte
// rate raised to make a long file look short) gives no duration to bill by.
// Compressed formats' byte rates are averages, not checked.
func consistentPCM(f []byte) bool {
	le := binary.LittleEndian
	tag, channels, rate := le.Uint16(f[0:2]), uint64(le.Uint16(f[2:4])), uint64(le.Uint32(f[4:8]))
	byteRate, align, bits := uint64(le.Uint32(f[8:12])), uint64(le.Uint16(f[12:14])), uint64(le.Uint16(f[14:16]))
	const pcm, float, extensible = 1, 3, 0xFFFE
	if tag != pcm && tag != float && tag != extensible {
		return true
	}
	return channels > 0 && bits > 0 && align == channels*((bits+7)/8) && byteRate == rate*align
}

// flacDuration reads the STREAMINFO block: total samples over the sample
// rate.
func flacDuration(r *bufio.Reader) (time.Duration, error) {
	var b [4 + 4 + 34]byte
	if _, err := io.ReadFull(r, b[:]); err != nil {
		return 0, ErrMalformed
	}
	if b[4]&0x7F != 0 || int(b[5])<<16|int(b[6])<<8|int(b[7]) != 34 { // STREAMINFO comes first, 34 bytes
		return 0, ErrMalformed
	}
	si := b[8:]
	rate := uint64(si[10])<<12 | uint64(si[11])<<4 | uint64(si[12])>>4
	total := uint64(si[13]&0x0F)<<32 | uint64(binary.BigEndian.Uint32(si[14:18]))
	if rate == 0 || total == 0 {
		return 0, fmt.Errorf("%w: STREAMINFO gives no sample count", ErrMalformed)
	}
	return span(total, rate), nil
}

// oggDuration reads the pages of the first logical stream: its codec's
// rate from the first page (Vorbis: the identification header's rate;
// Opus: 48 kHz, less the pre-skip), and the last granule position.
func oggDuration(r *bufio.Reader) (time.Duration, error) {
	var rate, preSkip uint64
	var serial uint32
	var last int64 = -1
	first := true
	var hdr [27]byte
	var segs [255]byte
	for {
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			break
		}
		if string(hdr[:4]) != "OggS" {
			return 0, ErrMalformed
		}
		granule := int64(binary.LittleEndian.Uint64(hdr[6:14]))
		ser := binary.LittleEndian.Uint32(hdr[14:18])
		n := int(hdr[26])
		if _, err := io.ReadFull(r, segs[:n]); err != nil {
			return 0, ErrMalformed
		}
		size := 0
		for _, s := range segs[:n] {
			size += int(s)
		}
		if first {
			first, serial = false, ser
			body := make([]byte, size)
			if _, err := io.ReadFull(r, body); err != nil {
				return 0, ErrMalformed
			}
			switch {
			case len(body) >= 16 && string(body[:7]) == "\x01vorbis":
				rate = uint64(binary.LittleEndian.Uint32(body[12:16]))
			case len(body) >= 12 && string(body[:8]) == "OpusHead":
				rate, preSkip = 48000, uint64(binary.LittleEndian.Uint16(body[10:12]))
			default:
				return 0, fmt.Errorf("%w: an Ogg stream neither Vorbis nor Opus", ErrUnsupported)
			}
			continue
		}
		if err := skip(r, int64(size)); err != nil {
			break
		}
		if ser == serial && granule >= 0 {
			last = granule
		}
	}
	if rate == 0 || last < 0 || uint64(last) <= preSkip {
		return 0, ErrMalformed
	}
	return span(uint64(last)-preSkip, rate), nil
}

// mp4Duration reads the top-level boxes to the movie header (mvhd inside
// moov): its duration over its timescale. Other boxes (mdat) are skipped.
func mp4Duration(r *bufio.Reader) (time.Duration, error) {
	for {
		size, typ, err := boxHeader(r)
		if err != nil {
			return 0, ErrMalformed
		}
		if typ != "moov" {
			if size < 0 {
				return 0, ErrMalformed // runs to the end, no moov after it
			}
			if err := skip(r, size); err != nil {
				return 0, ErrMalformed
			}
			continue
		}
		if size < 0 || size > maxBox {
			return 0, ErrMalformed
		}
		// Read as it comes: a size a file claims allocates nothing.
		moov, err := io.ReadAll(io.LimitReader(r, size))
		if err != nil || int64(len(moov)) < size {
			return 0, ErrMalformed
		}
		return mvhd(moov)
	}
}

// boxHeader reads a box's header and returns the size of its body (-1:
// to the end of the file) and its type.
func boxHeader(r io.Reader) (int64, string, error) {
	var h [8]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return 0, "", err
	}
	size, typ := int64(binary.BigEndian.Uint32(h[:4])), string(h[4:])
	switch size {
	case 0:
		return -1, typ, nil
	case 1:
		var l [8]byte
		if _, err := io.ReadFull(r, l[:]); err != nil {
			return 0, "", err
		}
		big := binary.BigEndian.Uint64(l[:])
		if big < 16 || big > 1<<40 {
			return 0, "", ErrMalformed
		}
		return int64(big) - 16, typ, nil
	}
	if size < 8 {
		return 0, "", ErrMalformed
	}
	return size - 8, typ, nil
}

// mvhd finds the movie header in a moov box's body.
func mvhd(moov []byte) (time.Duration, error) {
	for len(moov) >= 8 {
		size := int(binary.BigEndian.Uint32(moov[:4]))
		if size < 8 || size > len(moov) {
			return 0, ErrMalformed
		}
		if string(moov[4:8]) == "mvhd" {
			b := moov[8:size]
			if len(b) < 20 {
				return 0, ErrMalformed
			}
			var scale, dur uint64
			if b[0] == 1 {
				if len(b) < 32 {
					return 0, ErrMalformed
				}
				scale, dur = uint64(binary.BigEndian.Uint32(b[20:24])), binary.BigEndian.Uint64(b[24:32])
			} else {
				scale, dur = uint64(binary.BigEndian.Uint32(b[12:16])), uint64(binary.BigEndian.Uint32(b[16:20]))
			}
			if scale == 0 || dur == 0 || dur == 0xFFFFFFFF || dur>>36 != 0 {
				return 0, fmt.Errorf("%w: the movie header gives no duration", ErrMalformed)
			}
			return span(dur, scale), nil
		}
		moov = moov[size:]
	}
	return 0, fmt.Errorf("%w: no movie header", ErrMalformed)
}
