"""meshseg: MeshNet vs U-Net brain MRI segmentation as a reproducible Snakemake workflow."""

__version__ = "0.1.0"
