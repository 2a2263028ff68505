package audio

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"time"
)

// mpegFrame is what an MPEG audio frame header says.
type mpegFrame struct {
	version int // 1, 2, or 25 (MPEG-2.5)
	layer   int // 1, 2, 3
	rate    int // samples per second
	samples int // per frame
	length  int // bytes, header included
	mono    bool
}

var (
	bitratesV1 = [3][15]int{
		{0, 32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 352, 384, 416, 448},
		{0, 32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384},
		{0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320},
	}
	bitratesV2 = [3][15]int{
		{0, 32, 48, 56, 64, 80, 96, 112, 128, 144, 160, 176, 192, 224, 256},
		{0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160},
		{0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160},
	}
	sampleRates = map[int][3]int{1: {44100, 48000, 32000}, 2: {22050, 24000, 16000}, 25: {11025, 12000, 8000}}
)

// parseFrame reads a 4-byte frame header; ok is false for anything that is
// not a valid header (free bitrate included: its length is not known).
func parseFrame(h []byte) (mpegFrame, bool) {
	if h[0] != 0xFF || h[1]&0xE0 != 0xE0 {
		return mpegFrame{}, false
	}
	var f mpegFrame
	switch (h[1] >> 3) & 3 {
	case 0:
		f.version = 25
	case 2:
		f.version = 2
	case 3:
		f.version = 1
	default:
		return f, false
	}
	switch (h[1] >> 1) & 3 {
	case 1:
		f.layer = 3
	case 2:
		f.layer = 2
	case 3:
		f.layer = 1
	default:
		return f, false
	}
	bi, si := int(h[2]>>4), int((h[2]>>2)&3)
	if bi == 0 || bi == 15 || si == 3 {
		return f, false
	}
	kbps := bitratesV1[f.layer-1][bi]
	if f.version != 1 {
		kbps = bitratesV2[f.layer-1][bi]
	}
	f.rate = sampleRates[f.version][si]
	pad := int((h[2] >> 1) & 1)
	f.mono = h[3]>>6 == 3
	switch {
	case f.layer == 1:
		f.samples = 384
		f.length = (12*kbps*1000/f.rate + pad) * 4
	case f.layer == 3 && f.version != 1:
		f.samples = 576
		f.length = 72*kbps*1000/f.rate + pad
	default:
		f.samples = 1152
		f.length = 144*kbps*1000/f.rate + pad
	}
	return f, f.length >= 4
}

// vbrFrames reads the frame count of a Xing, Info or VBRI header in the
// first frame, if there is one.
func vbrFrames(f mpegFrame, frame []byte) (uint64, bool) {
	side := 32
	switch {
	case f.version == 1 && f.mono:
		side = 17
	case f.version != 1 && !f.mono:
		side = 17
	case f.version != 1:
		side = 9
	}
	if x := 4 + side; len(frame) >= x+12 {
		tag := string(frame[x : x+4])
		if (tag == "Xing" || tag == "Info") && binary.BigEndian.Uint32(frame[x+4:x+8])&1 == 1 {
			return uint64(binary.BigEndian.Uint32(frame[x+8 : x+12])), true
		}
	}
	if len(frame) >= 36+18 && string(frame[36:40]) == "VBRI" {
		return uint64(binary.BigEndian.Uint32(frame[36+14 : 36+18])), true
	}
	return 0, false
}

// mp3Duration skips an ID3v2 tag and counts the audio frames of the whole
// file (a VBR header's own count is not trusted).
func mp3Duration(r *bufio.Reader) (time.Duration, error) {
	if h, _ := r.Peek(10); len(h) == 10 && string(h[:3]) == "ID3" {
		size := int64(h[6]&0x7F)<<21 | int64(h[7]&0x7F)<<14 | int64(h[8]&0x7F)<<7 | int64(h[9]&0x7F)
		if h[5]&0x10 != 0 {
			size += 10 // a footer
		}
		if err := skip(r, 10+size); err != nil {
			return 0, ErrMalformed
		}
	}
	var first mpegFrame
	var samples uint64
	frames, resync := 0, 0
	sawInfo := false
	for {
		h, _ := r.Peek(4)
		if len(h) < 4 {
			break
		}
		f, ok := parseFrame(h)
		if ok && frames > 0 && (f.version != first.version || f.rate != first.rate || f.layer != first.layer) {
			ok = false // a false sync inside data or a tag
		}
		if !ok {
			if resync++; resync > maxResyncMP3 {
				break
			}
			if _, err := r.Discard(1); err != nil {
				break
			}
			continue
		}
		info := false
		if frames == 0 {
			first = f
			if !sawInfo {
				frame, _ := r.Peek(min(f.length, r.Size()))
				_, info = vbrFrames(f, frame)
				sawInfo = info
			}
		}
		if _, err := r.Discard(f.length); err != nil {
			if err == io.EOF || err == io.ErrUnexpectedEOF || err == bufio.ErrBufferFull {
				break
			}
			return 0, err
		}
		if info {
			// The VBR header's frame holds no audio, and the frame count it
			// gives is what the file claims, not what it holds: a count
			// lowered to bill a long file as short, or raised past a cut,
			// would be believed. The frames that follow are counted.
			continue
		}
		frames++
		samples += uint64(f.samples)
	}
	if frames == 0 {
		return 0, fmt.Errorf("%w: no MPEG audio frame", ErrMalformed)
	}
	return span(samples, uint64(first.rate)), nil
}
