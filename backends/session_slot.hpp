#pragma once
// What a taken-over connection holds for its whole life so that a cap counts it (issue 12): the
// session keeps it and drops it when it ends, which gives the place back. Empty: not counted.
#include <memory>

namespace acmegw::backends {

using SessionSlot = std::shared_ptr<void>;

}  // namespace acmegw::backends
