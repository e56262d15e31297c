"""NetAdapt refinement: proposals, weight transfer, selection loop (MobileNetV3 section 4.2)."""
