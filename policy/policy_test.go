package policy

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/procgate/procgate/kernel"
)

func TestItemsMapOntoKernelCatalog(t *testing.T) {
	for _, it := range Items() {
		if got, err := ParseItem(it.String()); err != nil || got != it {
			t.Errorf("ParseItem(%q) = %v, %v", it, got, err)
		}
		if it.Doc() == "" {
			t.Errorf("%s has no doc", it)
		}
		e, sc := it.KernelEntry(), it.KernelSyscall()
		if (e == nil) == (sc == nil) {
			t.Errorf("%s: kernel entry %v and syscall %v: want exactly one", it, e, sc)
			continue
		}
		// The policy's classes follow the kernel's: an entry or call that
		// asks for ATTACH is attach-class, and nothing else is.
		if (it.KernelClass() == kernel.ClassAttach) != it.Attach() {
			t.Errorf("%s: kernel class %s, policy attach-class %v", it, it.KernelClass(), it.Attach())
		}
	}
	if _, err := ParseItem("envrion"); err == nil || !strings.Contains(err.Error(), `did you mean "environ"`) {
		t.Errorf("ParseItem error = %v", err)
	}
	if Item(200).String() != "item(200)" || Item(200).Attach() || Item(200).Valid() {
		t.Error("out-of-range item")
	}
	if ReadItems&AttachItems != 0 || ReadItems|AttachItems != AllItems || AllItems.Len() != int(numItems) {
		t.Error("item classes overlap or miss items")
	}
	if s := (ItemIO.Set() | ItemMem.Set()).String(); s != "{ io mem }" {
		t.Errorf("ItemSet.String = %q", s)
	}
}

func TestDefaultPolicy(t *testing.T) {
	shipped, err := os.ReadFile("../examples/policies/default.pol")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(shipped, DefaultSource) {
		t.Fatal("examples/policies/default.pol differs from policy/default.pol (the embedded copy): copy one over the other")
	}
	if !bytes.Contains(DefaultSource, []byte("the kernel lets")) {
		t.Error("default.pol does not say that the broker serves what the kernel allows")
	}
	if _, err := Default(); err != nil {
		t.Fatalf("Default: %v", err)
	}
	f, err := Parse(DefaultName, DefaultSource)
	if err != nil {
		t.Fatal(err)
	}
	p, err := CompileWith(testResolver, f) // group procgate = 600
	if err != nil {
		t.Fatal(err)
	}
	member := &Subject{Process: Process{UID: 2000, GID: 2000, Groups: []uint32{600}}}
	other := &Subject{Process: Process{UID: 2001, GID: 2001}}
	granted := []Item{ItemStatus, ItemStatFull, ItemIO, ItemFd, ItemFdCount, ItemFdinfo, ItemExe, ItemCwd, ItemRoot, ItemLimits, ItemCgroup, ItemNS}
	for _, it := range Items() {
		want := false
		for _, g := range granted {
			want = want || g == it
		}
		if got := p.Decide(member, appA, 0, it).Allowed; got != want {
			t.Errorf("member %s = %v, want %v", it, got, want)
		}
		if p.Decide(member, agent, 0, it).Allowed {
			t.Errorf("member reads %s of a non-dumpable process", it)
		}
		if p.Decide(other, appA, 0, it).Allowed {
			t.Errorf("non-member granted %s", it)
		}
	}
	// Without the group, the load succeeds, grants nothing and warns.
	p, err = CompileWith(MapResolver{}, f)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Warnings()) == 0 || !strings.Contains(p.Warnings()[0].Msg, `group "procgate" does not exist`) {
		t.Errorf("warnings = %v", p.Warnings())
	}
	if p.Decide(member, appA, 0, ItemStatus).Allowed || p.Decide(&Subject{}, appA, 0, ItemStatus).Allowed {
		t.Error("the default policy grants without the procgate group")
	}
}

func TestExamplesCompile(t *testing.T) {
	paths, err := filepath.Glob("../examples/policies/*.pol")
	if err != nil || len(paths) < 6 {
		t.Fatalf("examples: %v %v", paths, err)
	}
	for _, path := range paths {
		src, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range []Resolver{SystemResolver{}, testResolver} {
			if _, err := Load(path, src); err != nil && r != nil {
				t.Errorf("%s: %v", path, err)
			}
			f, err := Parse(path, src)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := CompileWith(r, f); err != nil {
				t.Errorf("%s: %v", path, err)
			}
		}
	}
}

func TestLoadErrorsAreLists(t *testing.T) {
	_, err := Load("x.pol", []byte("allow * * : read { mem };"))
	var l ErrorList
	if !errors.As(err, &l) || !strings.HasPrefix(err.Error(), "x.pol:1:20: ") {
		t.Errorf("Load error = %v", err)
	}
	var e *Error
	if !errors.As(err, &e) {
		t.Error("errors.As(*Error) fails")
	}
	if _, err := CompileWith(nil); err == nil {
		t.Error("nil resolver accepted")
	}
}
