# CMake package for the moq_ffi C ABI, installed by scripts/package-c into
# PREFIX/lib/cmake/moq_ffi (relocatable: paths are found from this file's place).
#
#   find_package(moq_ffi 0.1 REQUIRED)       # CMAKE_PREFIX_PATH=PREFIX
#   target_link_libraries(app PRIVATE moq_ffi::moq_ffi)          # libmoq_ffi.so.1
#   target_link_libraries(app PRIVATE moq_ffi::moq_ffi_static)   # libmoq_ffi.a
#
# Both targets carry the include directory; the static one also the system libraries the
# Rust standard library needs. Linux layout (the shared library's SONAME is libmoq_ffi.so.1).
include(CMakeFindDependencyMacro)
find_dependency(Threads)

get_filename_component(_moq_ffi_prefix "${CMAKE_CURRENT_LIST_DIR}/../../.." ABSOLUTE)

if(NOT TARGET moq_ffi::moq_ffi)
  add_library(moq_ffi::moq_ffi SHARED IMPORTED)
  set_target_properties(moq_ffi::moq_ffi PROPERTIES
    IMPORTED_LOCATION "${_moq_ffi_prefix}/lib/libmoq_ffi.so.1"
    IMPORTED_SONAME "libmoq_ffi.so.1"
    INTERFACE_INCLUDE_DIRECTORIES "${_moq_ffi_prefix}/include")
endif()

if(NOT TARGET moq_ffi::moq_ffi_static)
  add_library(moq_ffi::moq_ffi_static STATIC IMPORTED)
  set_target_properties(moq_ffi::moq_ffi_static PROPERTIES
    IMPORTED_LOCATION "${_moq_ffi_prefix}/lib/libmoq_ffi.a"
    INTERFACE_INCLUDE_DIRECTORIES "${_moq_ffi_prefix}/include"
    INTERFACE_LINK_LIBRARIES "Threads::Threads;${CMAKE_DL_LIBS};m;rt;util")
endif()

unset(_moq_ffi_prefix)
