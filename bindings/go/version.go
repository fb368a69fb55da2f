package rmqstream

/*
#include "gormqs.h"
*/
import "C"

import (
	"fmt"
	"sync"
)

// The version of include/rmqstream.h this package was compiled against.
const (
	HeaderVersionMajor = C.RMQS_VERSION_MAJOR
	HeaderVersionMinor = C.RMQS_VERSION_MINOR
	HeaderVersionPatch = C.RMQS_VERSION_PATCH
)

// LibraryVersion is the version of the loaded librmqstream, e.g. "0.1.0".
func LibraryVersion() string { return C.GoString(C.rmqs_version()) }

var (
	versionOnce sync.Once
	versionErr  error
)

// versionCheck runs checkLibraryVersion once.
func versionCheck() error {
	versionOnce.Do(func() { versionErr = checkLibraryVersion() })
	return versionErr
}

// checkLibraryVersion compares the loaded library with the header: same major, and for 0.x the
// same minor (minor versions may break before 1.0), and at least the header's version (the
// library has every function the header declares).
func checkLibraryVersion() error {
	lib := uint32(C.rmqs_version_number())
	hdr := uint32(C.RMQS_VERSION_NUMBER)
	major, minor := lib>>24, (lib>>16)&0xff
	ok := major == HeaderVersionMajor && lib >= hdr && (major != 0 || minor == HeaderVersionMinor)
	if !ok {
		return fmt.Errorf("%w: loaded %s, compiled against %d.%d.%d",
			ErrIncompatibleLibrary, LibraryVersion(), HeaderVersionMajor, HeaderVersionMinor,
			HeaderVersionPatch)
	}
	return nil
}
