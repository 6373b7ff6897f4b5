package mapping

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"unicode"
)

// normVector is one line of testdata/normalize-vectors.*.jsonl.
// normalized == nil && sha256 == nil: the value is dropped;
// normalized == nil && sha256 != nil: the value was already a SHA-256 hash.
type normVector struct {
	Field      string  `json:"field"`
	Input      string  `json:"input"`
	Normalized *string `json:"normalized"`
	SHA256     *string `json:"sha256"`
}

func loadNormVectors(t *testing.T, name string) []normVector {
	t.Helper()
	f, err := os.Open(filepath.Join("..", "testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var vs []normVector
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for line := 1; sc.Scan(); line++ {
		if strings.TrimSpace(sc.Text()) == "" {
			continue
		}
		var v normVector
		if err := json.Unmarshal(sc.Bytes(), &v); err != nil {
			t.Fatalf("%s:%d: %v", name, line, err)
		}
		vs = append(vs, v)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(vs) == 0 {
		t.Fatalf("%s: no vectors", name)
	}
	return vs
}

// pinDOBYear fixes the latest acceptable year of birth for one test.
// Tests that call it must not run in parallel.
func pinDOBYear(t *testing.T, year int) {
	t.Helper()
	old := maxDOBYear
	maxDOBYear = func() int { return year }
	t.Cleanup(func() { maxDOBYear = old })
}

func sha256Hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

var knownReasons = map[string]bool{
	reasonEmpty: true, reasonUnknownKey: true, reasonEmail: true, reasonPhone: true,
	reasonName: true, reasonGender: true, reasonDOB: true, reasonCity: true,
	reasonState: true, reasonCountry: true, reasonZip: true, reasonExternalID: true,
	reasonLeadID: true, reasonFbc: true,
}

// checkDrop asserts err is a *DropError for key with a known reason that
// does not leak the value.
func checkDrop(t *testing.T, err error, key, value string) {
	t.Helper()
	var de *DropError
	if !errors.As(err, &de) {
		t.Fatalf("want *DropError, got %v", err)
	}
	if de.Key != key {
		t.Errorf("DropError.Key = %q, want %q", de.Key, key)
	}
	if !knownReasons[de.Reason] {
		t.Errorf("unexpected reason %q", de.Reason)
	}
	// The message is made of the key and the constant reason only, so the
	// value cannot be in it.
	if de.Error() != "dropped "+key+": "+de.Reason {
		t.Errorf("unexpected message %q", de.Error())
	}
	if v := strings.TrimSpace(value); strings.HasPrefix(v, "secret") && strings.Contains(de.Error(), "secret") {
		t.Errorf("error %q contains the value", de.Error())
	}
}

func TestNormalizeVectors(t *testing.T) {
	// 2027 = the clock's current year + 1 when the vectors were written;
	// no vector depends on it.
	pinDOBYear(t, 2027)
	for _, file := range []string{"normalize-vectors.sample.jsonl", "normalize-vectors.extra.jsonl"} {
		file := file
		t.Run(strings.TrimSuffix(strings.TrimPrefix(file, "normalize-vectors."), ".jsonl"), func(t *testing.T) {
			for i, v := range loadNormVectors(t, file) {
				v := v
				t.Run(fmt.Sprintf("%s_%d", v.Field, i), func(t *testing.T) {
					checkVector(t, v)
				})
			}
		})
	}
}

func checkVector(t *testing.T, v normVector) {
	t.Helper()
	got, err := NormalizeField(v.Field, v.Input)
	hashed, herr := HashField(v.Field, v.Input)
	switch {
	case v.SHA256 == nil: // dropped
		if err == nil || herr == nil {
			t.Fatalf("input %q: want drop, got %q / %q", v.Input, got, hashed)
		}
		checkDrop(t, err, v.Field, v.Input)
		checkDrop(t, herr, v.Field, v.Input)
	case v.Normalized == nil: // already a hash
		if err != nil || herr != nil {
			t.Fatalf("input %q: %v / %v", v.Input, err, herr)
		}
		if !IsSHA256Hex(strings.TrimSpace(v.Input)) {
			t.Fatalf("vector: %q is not a hash", v.Input)
		}
		if hashed != *v.SHA256 || got != *v.SHA256 {
			t.Errorf("input %q: got %q / %q, want passthrough %q", v.Input, got, hashed, *v.SHA256)
		}
	default:
		if sha256Hex(*v.Normalized) != *v.SHA256 {
			t.Fatalf("vector: sha256 of %q is not %s", *v.Normalized, *v.SHA256)
		}
		if err != nil || herr != nil {
			t.Fatalf("input %q: want %q, got %v / %v", v.Input, *v.Normalized, err, herr)
		}
		if got != *v.Normalized {
			t.Errorf("NormalizeField(%q, %q) = %q, want %q", v.Field, v.Input, got, *v.Normalized)
		}
		if hashed != *v.SHA256 {
			t.Errorf("HashField(%q, %q) = %s, want %s", v.Field, v.Input, hashed, *v.SHA256)
		}
	}
}

// normCase is one explicit case: want "" means dropped.
type normCase struct{ key, in, want string }

func runNormCases(t *testing.T, cases []normCase) {
	t.Helper()
	for i, c := range cases {
		c := c
		t.Run(fmt.Sprintf("%s_%d", c.key, i), func(t *testing.T) {
			got, err := NormalizeField(c.key, c.in)
			h, herr := HashField(c.key, c.in)
			if c.want == "" {
				if err == nil || herr == nil {
					t.Fatalf("%s %q: want drop, got %q", c.key, c.in, got)
				}
				checkDrop(t, err, c.key, c.in)
				return
			}
			if err != nil || herr != nil {
				t.Fatalf("%s %q: %v / %v", c.key, c.in, err, herr)
			}
			if got != c.want {
				t.Errorf("%s %q = %q, want %q", c.key, c.in, got, c.want)
			}
			if h != sha256Hex(c.want) {
				t.Errorf("%s %q: hash %s, want sha256(%q)", c.key, c.in, h, c.want)
			}
		})
	}
}

func TestNormalizePhone(t *testing.T) {
	runNormCases(t, []normCase{
		// With a country code, in every common spelling: same digits.
		{"ph", "+1 (555) 123-4567", "15551234567"},
		{"ph", "1-555-123-4567", "15551234567"},
		{"ph", "001 555 123 4567", "15551234567"},
		{"ph", "0044 20 7946 0958", "442079460958"},
		{"ph", "+44 20 7946 0958", "442079460958"},
		{"ph", "+44 (0)20 7946 0958", "4402079460958"}, // the (0) is kept: no guessing
		// Without a country code nothing is added (no guessing).
		{"ph", "555.123.4567", "5551234567"},
		{"ph", "(555) 123-4567", "5551234567"},
		{"ph", "020 7946 0958", "2079460958"},
		{"ph", "tel: 555 0100 ext 7", "55501007"},
		{"ph", "+", ""},
		{"ph", "0000", ""},
		{"ph", "phone", ""},
		{"ph", "١٢٣٤٥", ""}, // only ASCII digits count
		{"ph", "１２３４５", ""},
	})
}

func TestNormalizeNames(t *testing.T) {
	runNormCases(t, []normCase{
		{"fn", "Valéry", "valéry"},
		{"fn", "Zoë", "zoë"},
		{"fn", "Ğüneş", "ğüneş"},
		{"ln", "ÇAĞLAR", "çağlar"},
		{"fn", "Владимир", "владимир"},
		{"ln", "ПЕТРОВ", "петров"},
		{"fn", "王小明", "王小明"},
		{"ln", "佐藤", "佐藤"},
		{"fn", "정", "정"},
		{"ln", "Nguyễn", "nguyễn"},
		{"fn", "Mary–Jane", "mary–jane"}, // en dash is not ASCII punctuation
		{"fn", "Jean-Pierre", "jeanpierre"},
		{"ln", "O'Connor", "oconnor"},
		{"ln", "Van Der Berg", "vanderberg"},
		{"fn", "Mary\u00a0Jane", "maryjane"}, // JS \s includes NBSP
		{"fn", "Ann\ufeffe", "anne"},         // and U+FEFF
		{"fn", "Customer_456", "customer456"},
		// JavaScript's toLowerCase, not Go's: İ → i + U+0307, final sigma.
		{"fn", "İlker", "i\u0307lker"},
		{"ln", "ΠΑΠΑΔΟΠΟΥΛΟΣ", "παπαδοπουλος"},
		{"ln", "ΟΔΥΣΣΕΑΣ", "οδυσσεας"},
		{"ln", "ΣΑΣ-ΒΑ", "σασβα"}, // '-' is stripped first: Σ is not final
		{"fn", "Σ", "σ"},
		{"fn", "Jose\u0301", "jose\u0301"}, // no Unicode normalisation form is applied
		{"fn", "...", ""},
		{"fn", "__undef__", ""},
		{"ln", " \t ", ""},
	})
}

func TestNormalizeStateCountry(t *testing.T) {
	runNormCases(t, []normCase{
		{"st", "California", "ca"},
		{"st", "CA", "ca"},
		{"st", "ca.", "ca"},
		{"st", "New York", "ny"},
		{"st", "N.Y.", "ny"},
		{"st", "West Virginia", "wv"},
		{"st", "Virginia", "va"},
		{"st", "Quebec", "qc"},
		{"st", "QC", "qc"},
		{"st", "British Columbia", "bc"},
		{"st", "Newfoundland and Labrador", "nl"},
		{"st", "TexasState", "tx"}, // contains a name
		{"st", "Québec", "qu"},     // é is removed before matching, as in the reference
		{"st", "Bavaria", "ba"},    // not US/CA: first two letters
		{"st", "Tex.", "te"},
		{"st", "C", "c"},
		{"st", "999", ""},
		{"country", "United States", "us"},
		{"country", "United States of America", "us"},
		{"country", "USA", "us"},
		{"country", "us", "us"},
		{"country", "U.S.", "us"},
		{"country", "Germany", "de"},
		{"country", "DE", "de"},
		{"country", "United Kingdom", "gb"},
		{"country", "UK", "uk"}, // two letters are kept as given
		{"country", "South-Korea", "kr"},
		{"country", "Korea, Republic of", "kr"},
		{"country", "Nigeria", "ng"}, // exact match wins over "niger" inside it
		{"country", "Republic of Niger", "ne"},
		{"country", "The Netherlands", "nl"},
		{"country", "InvalidCountry", "in"},
		{"country", "U", "u"},
		{"country", "中国", ""},
		{"country", "123", ""},
	})
}

func TestNormalizeDOB(t *testing.T) {
	pinDOBYear(t, 2027)
	runNormCases(t, []normCase{
		{"db", "1990-12-31", "19901231"},
		{"db", "12/31/1990", "19901231"},
		{"db", "31.12.1990", "19901231"},
		{"db", "31/12/1990", "19901231"},
		{"db", "19901231", "19901231"},
		{"db", "1990/31/12", "19901231"},
		{"db", "2/3/1990", "19900203"}, // ambiguous: US month/day
		{"db", "1990-12-31T00:00:00Z", "19901231"},
		{"db", "12月31日1990年", "19901231"},
		{"db", "Dec 31 1990", ""}, // the reference has no month names: 2 groups
		{"db", "December 31, 1990", ""},
		{"db", "12/31/90", ""}, // two-digit years are refused
		{"db", "01/32/1990", ""},
		{"db", "13-15-1990", ""},
		{"db", "1990-02-30", "19900230"}, // day ≤ 31 only, no calendar check
		{"db", "29/02/1900", "19000229"},
		{"db", "01-01-1800", "18000101"},
		{"db", "01-01-1799", ""},
		{"db", "01-01-2027", "20270101"},
		{"db", "01-01-2028", ""},
		{"db", "1990123", ""},
		{"db", "99999999", "99999999"}, // a bare 8-digit group passes as is
		{"db", "99999999999999999999-1-1", ""},
	})
	pinDOBYear(t, 2030)
	runNormCases(t, []normCase{{"db", "01-01-2028", "20280101"}})
}

func TestNormalizeGender(t *testing.T) {
	var cases []normCase
	for _, w := range normMaleWords {
		cases = append(cases, normCase{"ge", w, "m"}, normCase{"ge", strings.ToUpper(w), "m"})
	}
	for _, w := range normFemaleWords {
		cases = append(cases, normCase{"ge", w, "f"}, normCase{"ge", " " + w + "\t", "f"})
	}
	cases = append(cases,
		normCase{"ge", "Male", "m"},
		normCase{"ge", "MA'AM", "f"},
		normCase{"ge", "\u212Aing", "m"}, // KELVIN SIGN lower-cases to k
		normCase{"ge", "males", ""},
		normCase{"ge", "male.", ""},
		normCase{"ge", "Mr.", ""},
		normCase{"ge", "Mann", ""},
		normCase{"ge", "non-binary", ""},
		normCase{"ge", "unknown", ""},
		normCase{"ge", "m f", ""},
		normCase{"ge", strings.Repeat("male", 20), ""},
	)
	runNormCases(t, cases)
}

func TestNormalizeZipEmailCityExternalID(t *testing.T) {
	runNormCases(t, []normCase{
		{"zp", "10001-0001", "10001"}, // US ZIP+4 keeps its first 5 digits
		{"zp", "90210", "90210"},
		{"zp", " 12345-6789 ", "12345"},
		{"zp", "SW1A 1AA", "sw1a1aa"}, // UK (Decision: spaces removed)
		{"zp", "EC1A 1BB", "ec1a1bb"},
		{"zp", "M1 1AA", "m11aa"},
		{"zp", "K1A 0B1", "k1a0b1"}, // Canada
		{"zp", "M5V3A8", "m5v3a8"},
		{"zp", "\u3000ZIP123\u3000", "zip123"},
		{"zp", "NL-1234AB", "nl"},
		{"zp", "-12345", ""},
		{"zp", "1", ""},
		{"zp", " a ", ""},
		{"zp", "é", ""},
		{"zp", "😀", "😀"}, // JavaScript length: 2 UTF-16 code units
		{"em", "  John.Doe@Example.COM  ", "john.doe@example.com"},
		{"em", "user.name+tag@domain.co.uk", "user.name+tag@domain.co.uk"},
		{"em", "a:.b@example.com", "a:.b@example.com"}, // the reference regexp's "(:?" quirk
		{"em", "test@com", ""},
		{"em", "test@example..com", ""},
		{"em", "user@-example.com", ""},
		{"em", "user@example-.com", ""},
		{"em", "jöhn@example.com", ""},
		{"em", "john@exämple.com", ""},
		{"em", "5d41402abc4b2a76b9719d911017c592", ""}, // MD5 is not passed through
		{"ct", "San José", "sanjos"},
		{"ct", "Winston-Salem", "winstonsalem"},
		{"ct", "3rdWard", ""},
		{"ct", "中文", ""},
		{"external_id", "abc123xyz  ", "abc123xyz"},
		{"external_id", "User ID 42", "userid42"},
		{"external_id", "CuStOmEr_789", "customer_789"},
		{"external_id", "5D41402ABC4B2A76B9719D911017C592", "5d41402abc4b2a76b9719d911017c592"},
	})
}

func TestHashPassthrough(t *testing.T) {
	const h = "A665A45920422F9D417E4867EFDC4FB8A04A1F3FFF1FA07E998E86F7F7A27AE3"
	low := strings.ToLower(h)
	for _, key := range HashedKeys {
		for _, in := range []string{h, low, "  " + h + "\n", "\u00a0" + low} {
			got, err := HashField(key, in)
			if err != nil || got != low {
				t.Errorf("HashField(%s, %q) = %q, %v; want %q", key, in, got, err, low)
			}
			n, err := NormalizeField(key, in)
			if err != nil || n != low {
				t.Errorf("NormalizeField(%s, %q) = %q, %v; want %q", key, in, n, err, low)
			}
		}
		// 65 hex characters are not a hash: normalised (and hashed) as any value.
		got, err := HashField(key, low+"3")
		if err == nil && got == low+"3" {
			t.Errorf("%s: 65-hex value passed through", key)
		}
	}
}

func TestIsSHA256Hex(t *testing.T) {
	for in, want := range map[string]bool{
		strings.Repeat("a", 64):                          true,
		strings.Repeat("F", 64):                          true,
		strings.Repeat("0123456789abcdefABCDEF", 3)[:64]: true,
		strings.Repeat("a", 63):                          false,
		strings.Repeat("a", 65):                          false,
		strings.Repeat("g", 64):                          false,
		"":                                               false,
		" " + strings.Repeat("a", 63):                    false,
		strings.Repeat("a", 32):                          false,
	} {
		if got := IsSHA256Hex(in); got != want {
			t.Errorf("IsSHA256Hex(%q) = %v", in, got)
		}
	}
}

func TestNormalizeUnknownKey(t *testing.T) {
	for _, key := range []string{"lead_id", "fbc", "EM", "email", ""} {
		_, err := NormalizeField(key, "x@example.com")
		checkDrop(t, err, key, "x@example.com")
		_, err = HashField(key, strings.Repeat("a", 64))
		checkDrop(t, err, key, "")
	}
}

// TestNoLeakInReasons: a drop reason is a constant; it never echoes input.
func TestNoLeakInReasons(t *testing.T) {
	inputs := []string{"secret@", "secret Secretary", "secret 13-13-1313", "secret-top", "secret!!!!"}
	for _, key := range HashedKeys {
		for _, in := range inputs {
			if _, err := HashField(key, in); err != nil {
				checkDrop(t, err, key, in)
			}
		}
	}
	_, err := ParseLeadID("secret-lead-123")
	checkDrop(t, err, "lead_id", "secret-lead-123")
	checkDrop(t, CheckFbc("fb.9.secretclick"), "fbc", "fb.9.secretclick")
}

// TestLowerToASCII guards normTwoLetter's shortcut: only İ and the KELVIN
// SIGN lower-case to an ASCII letter.
func TestLowerToASCII(t *testing.T) {
	for r := rune(0x80); r <= unicode.MaxRune; r++ {
		if r == 'İ' || r == '\u212A' {
			continue
		}
		if l := unicode.ToLower(r); l < 0x80 {
			t.Errorf("U+%04X lower-cases to %q", r, l)
		}
	}
}

func TestJSTrim(t *testing.T) {
	for in, want := range map[string]string{
		" \t\n\v\f\rx\r\n":          "x",
		"\u00a0\ufeffx\u3000\u2028": "x",
		"\u0085x":                   "\u0085x", // NEL is not JS whitespace
		"\u200bx":                   "\u200bx", // nor is ZERO WIDTH SPACE
		"":                          "",
	} {
		if got := jsTrim(in); got != want {
			t.Errorf("jsTrim(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestParseLeadID(t *testing.T) {
	ok := map[string]int64{
		"123456789012345":     123456789012345,
		"1234567890123456":    1234567890123456,
		"12345678901234567":   12345678901234567,
		"98765432109876543":   98765432109876543,
		" 123456789012345\n":  123456789012345,
		"\t1234567890123456 ": 1234567890123456,
	}
	for in, want := range ok {
		got, err := ParseLeadID(in)
		if err != nil || got != want {
			t.Errorf("ParseLeadID(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	// A 17-digit id round-trips exactly, which float64 could not do.
	const id = "98765432109876543"
	n, err := ParseLeadID(id)
	if err != nil || strconv.FormatInt(n, 10) != id {
		t.Fatalf("round trip: %d, %v", n, err)
	}
	if int64(float64(n)) == n || n <= 1<<53 {
		t.Fatalf("test id should not be representable in float64")
	}
	if b, _ := json.Marshal(n); string(b) != id {
		t.Errorf("JSON: %s", b)
	}
	for _, in := range []string{
		"12345678901234",     // 14 digits
		"123456789012345678", // 18 digits
		"012345678901234",    // leading zero
		"0123456789012345",
		"1e15",
		"123456789012345.0",
		"12345678901234a",
		"abcdefghijklmnop",
		"+123456789012345",
		"-123456789012345",
		"123 456 789 012 345",
		"１２３４５６７８９０１２３４５",
		"",
		"   ",
		strconv.FormatInt(math.MaxInt64, 10),
	} {
		if _, err := ParseLeadID(in); err == nil {
			t.Errorf("ParseLeadID(%q) accepted", in)
		} else {
			checkDrop(t, err, "lead_id", in)
		}
	}
}

func TestCheckFbc(t *testing.T) {
	for _, in := range []string{
		"fb.1.1554763741205.AbCdEfGhIjKlMnOpQrStUvWxYz1234567890",
		"fb.0.1554763741205.x",
		"fb.2.1554763741205.IwAR2F4-dbP0l7Mn1IawQQGCINEz7PYXQvwjNwB_qa2ofrHyiLjcbCRxTDMgk",
		"fb.1.1657051589577.IwZXh0bgNhZW0CMTAAAR-uK_5w.AQEAAQMB", // parameter-builder appendix
	} {
		if err := CheckFbc(in); err != nil {
			t.Errorf("CheckFbc(%q) = %v", in, err)
		}
	}
	for _, in := range []string{
		"",
		"fb.1.1554763741205.",
		"fb.1.1554763741205",
		"fb.3.1554763741205.abc",
		"fb.a.1554763741205.abc",
		"FB.1.1554763741205.abc",
		"fb.1.155476374120.abc",   // 12 digits (seconds-ish)
		"fb.1.15547637412050.abc", // 14 digits
		"fb.1.1554763741205x.abc",
		"fb.1.155476374120a.abc",
		"fb..1554763741205.abc",
		" fb.1.1554763741205.abc",
		"fb.1.1554763741205.abc ",
		"fb.1.1554763741205.ab c",
		"fb.1.1554763741205.abc\n",
		"fb.1.1554763741205.ab\u00a0c",
		"fb.1.1554763741205.ab\x00c",
		"fb.1.1554763741205.ab\xffc",
		"IwAR2F4-dbP0l7Mn1IawQQGCINEz7PYXQvwjNwB",
	} {
		err := CheckFbc(in)
		if err == nil {
			t.Errorf("CheckFbc(%q) accepted", in)
			continue
		}
		checkDrop(t, err, "fbc", in)
	}
}

func TestNormalizeNoCopyWhenNormal(t *testing.T) {
	const in = "test@example.com"
	allocs := testing.AllocsPerRun(100, func() {
		if out, err := NormalizeField("em", in); err != nil || out != in {
			t.Fatal(out, err)
		}
	})
	if allocs != 0 {
		t.Errorf("NormalizeField on a normal value allocated %v times", allocs)
	}
}

func BenchmarkHashField(b *testing.B) {
	for _, c := range []struct{ key, in string }{
		{"em", "  John.Doe@Example.COM "},
		{"ph", "+1 (555) 123-4567"},
	} {
		b.Run(c.key, func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				if _, err := HashField(c.key, c.in); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// FuzzNormalizeField: no panics; a hash is 64 lower-case hex; normalising
// a normalised value changes nothing.
func FuzzNormalizeField(f *testing.F) {
	for _, s := range []string{"John.Doe@Example.COM", "+1 (555) 123-4567", "ΟΔΟΣ", "İlker", "12/31/1990",
		"Texas", "SW1A 1AA", "a:.b@c.de", "\xff\xfe", "\u00a0", strings.Repeat("A", 64)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		for _, key := range HashedKeys {
			n, err := NormalizeField(key, in)
			h, herr := HashField(key, in)
			if (err == nil) != (herr == nil) {
				t.Fatalf("%s %q: %v / %v", key, in, err, herr)
			}
			if err != nil {
				continue
			}
			if !IsSHA256Hex(h) || strings.ToLower(h) != h {
				t.Fatalf("%s %q: bad hash %q", key, in, h)
			}
			if n2, err := NormalizeField(key, n); err != nil || n2 != n {
				t.Fatalf("%s %q: not idempotent: %q → %q, %v", key, in, n, n2, err)
			}
		}
	})
}
