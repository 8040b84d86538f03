# cmake -DVERSION=x.y.z -DOUT=<file> -DCMAKE_SIZEOF_VOID_P=8 -P write-version.cmake
# Writes moq_ffi-config-version.cmake. AnyNewerVersion: the moq_* ABI is kept source- and
# binary-compatible, so a newer library satisfies a request for an older version.
include(CMakePackageConfigHelpers)
write_basic_package_version_file("${OUT}" VERSION "${VERSION}" COMPATIBILITY AnyNewerVersion)
