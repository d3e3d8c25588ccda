"""DeleteFleet: everything a fleet has, found by its tags and by its state records, checked, then deleted
in the order AWS allows (instances before the groups their interfaces hold, the balancer before its target
group, endpoints before their group, the registry item last). Every stage is one function shared by the
plan (which changes nothing) and the step that applies it, as the prerequisites stage shares its
reconcilers: the plan and the deletion cannot disagree about what is the fleet's."""
