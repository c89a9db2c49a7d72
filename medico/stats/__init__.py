"""Statistics that keep a score honest: spread and bootstrap intervals over images and paired tests of per-image
score vectors (:mod:`.per_image`), and two runs compared image by image (:mod:`.paired_runs`)."""
