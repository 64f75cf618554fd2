"""A healthy run: the reference CNN on in-memory data, two epochs, sensible settings. perfdoctor
should find nothing above info here."""

from reference_cnn import main

if __name__ == "__main__":
    main(["--epochs", "2", "--samples", "3200"])
