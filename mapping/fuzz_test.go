package mapping

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
)

// Fuzz targets of the normalisers (issue 6). FuzzNormalizeField (in
// normalize_test.go) checks what holds for every key at once: no panic, a
// hash is 64 lower-case hex, normalising is idempotent. FuzzNormalizeKey
// adds, key by key, the shape Meta expects of a normalised value and that
// HashField is SHA-256 of NormalizeField; FuzzParseLeadID checks the lead
// id parser. Their seed corpora in testdata/fuzz/ run with every
// `go test`; `go test -fuzz FuzzNormalizeKey ./mapping` explores further.

// shapeOK reports whether n, the normalised value of a non-hashed input,
// has the shape its key requires; "" when it does.
func shapeOK(key, n string) string {
	if n == "" {
		return "empty"
	}
	if !utf8.ValidString(n) {
		return "not valid UTF-8"
	}
	all := func(ok func(c byte) bool) bool {
		for i := 0; i < len(n); i++ {
			if !ok(n[i]) {
				return false
			}
		}
		return true
	}
	digit := func(c byte) bool { return '0' <= c && c <= '9' }
	lower := func(c byte) bool { return 'a' <= c && c <= 'z' }
	// noUpperSpace: no ASCII upper-case letter or ASCII whitespace (the
	// reference lower-cases with JavaScript's toLowerCase, which never
	// yields an ASCII upper-case letter).
	noUpperSpace := func(c byte) bool { return !('A' <= c && c <= 'Z') && c != ' ' && !('\t' <= c && c <= '\r') }
	switch key {
	case "em":
		if !all(func(c byte) bool { return c < utf8.RuneSelf && noUpperSpace(c) }) || strings.Count(n, "@") != 1 {
			return "not a lower-case ASCII address with one @"
		}
	case "ph":
		if !all(digit) || n[0] == '0' {
			return "not digits without a leading zero"
		}
	case "fn", "ln":
		// Whitespace and ASCII punctuation go; other control characters
		// stay, as in the reference (STRIP_WHITESPACE_AND_PUNCTUATION_REGEX),
		// so that hashes match Meta's SDKs.
		if !all(noUpperSpace) || strings.ContainsAny(n, "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~") {
			return "upper case, whitespace or ASCII punctuation left in a name"
		}
	case "ge":
		if n != "m" && n != "f" {
			return "not m or f"
		}
	case "db":
		if len(n) != 8 || !all(digit) {
			return "not YYYYMMDD"
		}
	case "ct":
		if !all(func(c byte) bool { return lower(c) || digit(c) }) || !lower(n[0]) {
			return "not [a-z][a-z0-9]*"
		}
	case "st", "country":
		if len(n) > 2 || !all(lower) {
			return "not one or two letters a-z"
		}
	case "zp":
		if !all(noUpperSpace) || strings.Contains(n, "-") {
			return "upper case, whitespace or '-' left in a zip"
		}
	case "external_id":
		if !all(noUpperSpace) {
			return "upper case or whitespace left in an external_id"
		}
	default:
		return "unknown key"
	}
	return ""
}

func FuzzNormalizeKey(f *testing.F) {
	for i, s := range []string{
		" John.Doe@Example.COM ", "+49 (0)30 1234-5678", "00 1 555 123 4567", "Valéry", "O'Brien-Smith",
		"Female", "MRS", "1990-12-31", "12/31/1990", "31.12.1990", "19901231", "San José", "Texas",
		"South-Dakota", "United States", "SW1A 1AA", "10001-0001", " ABC 123 ", "İstanbul", "\u212Aelvin",
		"undefined", strings.Repeat("F", 64), "\xff\xfe", "\u00a0x\u00a0", "a@b.c", "😀😀",
	} {
		f.Add(uint8(i), s)
	}
	f.Fuzz(func(t *testing.T, k uint8, in string) {
		key := HashedKeys[int(k)%len(HashedKeys)]
		n, err := NormalizeField(key, in)
		h, herr := HashField(key, in)
		if err != nil {
			var de *DropError
			if !errors.As(err, &de) || de.Key != key || de.Reason == "" {
				t.Fatalf("%s %q: error %v is not a DropError for the key", key, in, err)
			}
			if herr == nil {
				t.Fatalf("%s %q: NormalizeField drops (%v) but HashField gives %q", key, in, err, h)
			}
			return
		}
		if herr != nil {
			t.Fatalf("%s %q: NormalizeField gives %q but HashField fails: %v", key, in, n, herr)
		}
		if IsSHA256Hex(jsTrim(in)) {
			if want := strings.ToLower(jsTrim(in)); n != want || h != want {
				t.Fatalf("%s %q: a hash must pass through lower-cased: %q / %q", key, in, n, h)
			}
			return
		}
		sum := sha256.Sum256([]byte(n))
		if want := hex.EncodeToString(sum[:]); h != want {
			t.Fatalf("%s %q: HashField %q is not SHA-256 of the normalised %q", key, in, h, n)
		}
		if why := shapeOK(key, n); why != "" {
			t.Fatalf("%s %q: normalised to %q: %s", key, in, n, why)
		}
	})
}

func FuzzParseLeadID(f *testing.F) {
	for _, s := range []string{"1234567890123456", " 12345678901234567 ", "123456789012345", "99999999999999999",
		"0123456789012345", "12345", "1234567890123456789", "１２３４５６７８９０１２３４５６", "1e15", "-123456789012345", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		id, err := ParseLeadID(in)
		if err != nil {
			if id != 0 {
				t.Fatalf("%q: error %v with id %d", in, err, id)
			}
			return
		}
		s := strconv.FormatInt(id, 10)
		if len(s) < 15 || len(s) > 17 || s != jsTrim(in) {
			t.Fatalf("%q: parsed to %d, want the trimmed 15-17 digits themselves", in, id)
		}
	})
}
