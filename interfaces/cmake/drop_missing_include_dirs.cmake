# The PyPI ROS wheels export *__rosidl_generator_py targets whose include path points at the
# Python of the machine that built the wheels (/opt/python/...). CMake refuses targets that name
# non-existent include directories, so drop those entries from every imported target.
# On a ROS distro every path exists and this changes nothing.
function(drop_missing_include_dirs)
  get_directory_property(_targets IMPORTED_TARGETS)
  foreach(_target IN LISTS _targets)
    get_target_property(_dirs ${_target} INTERFACE_INCLUDE_DIRECTORIES)
    if(NOT _dirs)
      continue()
    endif()
    set(_kept "")
    foreach(_dir IN LISTS _dirs)
      if(_dir MATCHES "^\\$<" OR EXISTS "${_dir}")
        list(APPEND _kept "${_dir}")
      endif()
    endforeach()
    set_target_properties(${_target} PROPERTIES INTERFACE_INCLUDE_DIRECTORIES "${_kept}")
  endforeach()
endfunction()
