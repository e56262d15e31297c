"""The end-to-end job behind ``mobilenas run`` (table -> search -> NetAdapt -> train -> measure ->
export -> report): a runner handed its list of stages, below the command line and above the
algorithms (``nas``, ``netadapt``)."""
