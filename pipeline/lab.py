"""lab: people, rigs, animals and their procedures, probes and their electrodes."""

import datajoint as dj

from . import db, probes

schema = dj.Schema()


@schema
class Person(dj.Manual):
    """One lab member who runs sessions or owns animals."""

    definition = """
    username : varchar(32)
    ---
    fullname : varchar(128)
    """


@schema
class Rig(dj.Manual):
    """One behavior/recording rig (the rig names used in behavior_data_paths)."""

    definition = """
    rig : varchar(24)
    ---
    room = '' : varchar(20)
    rig_description = '' : varchar(1024)
    """


@schema
class AnimalStrain(dj.Lookup):
    """One mouse strain."""

    definition = """
    animal_strain : varchar(30)
    """
    contents = [("pl56",), ("kj18",)]


@schema
class AnimalSource(dj.Lookup):
    """One supplier of animals."""

    definition = """
    animal_source : varchar(30)
    """
    contents = [
        (s,) for s in ("Jackson Labs", "Allen Institute", "Charles River", "MMRRC", "Taconic", "Janelia", "Other")
    ]


@schema
class ModifiedGene(dj.Manual):
    """One gene modification carried by some subjects."""

    definition = """
    gene_modification : varchar(60)
    ---
    gene_modification_description = '' : varchar(256)
    """


@schema
class Subject(dj.Manual):
    """One animal."""

    definition = """
    subject_id : int32
    ---
    -> [nullable] Person
    cage_number = null : int32
    date_of_birth = null : date
    sex : enum('M', 'F', 'Unknown')
    -> [nullable] AnimalSource
    """

    class Strain(dj.Part):
        """One strain of a subject."""

        definition = """
        -> master
        -> AnimalStrain
        """

    class GeneModification(dj.Part):
        """One gene modification of a subject."""

        definition = """
        -> master
        -> ModifiedGene
        ---
        zygosity = 'Unknown' : enum('Het', 'Hom', 'Unknown')
        type = 'Unknown' : enum('Knock-in', 'Transgene', 'Unknown')
        """


@schema
class WaterRestriction(dj.Manual):
    """A subject's water-restriction record; its id ('h2o', e.g. dl25) names the rig files.

    (The original also repeated cage_number here; DataJoint 2 refuses to join two tables on a
    same-named attribute that is not inherited, so it lives in Subject only.)
    """

    definition = """
    -> Subject
    ---
    water_restriction_number : varchar(16)
    wr_start_date : date
    wr_start_weight : decimal(6, 3)
    unique index (water_restriction_number)
    """


@schema
class VirusSource(dj.Lookup):
    """One supplier of viruses."""

    definition = """
    virus_source : varchar(60)
    """
    contents = [("Janelia",), ("UPenn",), ("Addgene",), ("UNC",), ("Other",)]


@schema
class Serotype(dj.Manual):
    """One virus serotype."""

    definition = """
    serotype : varchar(60)
    """


@schema
class Virus(dj.Manual):
    """One virus batch."""

    definition = """
    virus_id : int32
    ---
    -> VirusSource
    -> Serotype
    -> Person
    virus_name : varchar(256)
    titer : float64
    order_date : date
    remarks = '' : varchar(256)
    """


@schema
class SkullReference(dj.Lookup):
    """A skull landmark that stereotaxic coordinates are measured from."""

    definition = """
    skull_reference : varchar(60)
    """
    contents = [("Bregma",), ("Lambda",)]


@schema
class BrainArea(dj.Lookup):
    """One targeted brain area (coarse, as used for insertions and photostimulation)."""

    definition = """
    brain_area : varchar(32)
    ---
    description = '' : varchar(1024)
    """
    contents = [
        ("ALM", "anterior lateral motor cortex"),
        ("vS1", "vibrissal primary somatosensory cortex"),
        ("Thalamus", "thalamus"),
        ("Medulla", "medulla"),
        ("Striatum", "striatum"),
        ("Midbrain", "midbrain"),
        ("vM1", "vibrissal motor cortex"),
        ("PL", "prelimbic cortex"),
        ("IL", "infralimbic cortex"),
        ("ACA", "anterior cingulate area"),
        ("MOB", "main olfactory bulb"),
        ("RSP", "retrosplenial cortex"),
    ]


@schema
class Hemisphere(dj.Lookup):
    """Left, right or both."""

    definition = """
    hemisphere : varchar(32)
    """
    contents = [("left",), ("right",), ("both",)]


@schema
class Whisker(dj.Lookup):
    """One whisker (of those tracked or stimulated)."""

    definition = """
    whisker : varchar(32)
    """
    contents = [(w,) for w in ("B1", "B2", "B3", "C1", "C2", "C3", "D1", "D2", "D3")]


@schema
class Surgery(dj.Manual):
    """One surgery on a subject."""

    definition = """
    -> Subject
    surgery_id : int32
    ---
    -> Person
    start_time : datetime
    end_time : datetime
    surgery_description = '' : varchar(256)
    """

    class VirusInjection(dj.Part):
        """One virus injection in a surgery."""

        definition = """
        -> master
        injection_id : int32
        ---
        -> Virus
        -> SkullReference
        ap_location : decimal(8, 2)  # um from the reference, anterior positive
        ml_location : decimal(8, 2)  # um from the reference, right positive
        dv_location : decimal(8, 2)  # um, ventral positive
        volume : float64             # nl
        dilution : float64
        description = '' : varchar(256)
        """

    class Procedure(dj.Part):
        """One other procedure (e.g. craniotomy, headbar) in a surgery."""

        definition = """
        -> master
        procedure_id : int32
        ---
        -> SkullReference
        ap_location = null : decimal(8, 2)
        ml_location = null : decimal(8, 2)
        dv_location = null : decimal(8, 2)
        surgery_procedure_description : varchar(1000)
        """


@schema
class ProbeType(dj.Lookup):
    """One kind of probe; its Electrode part holds the site geometry."""

    definition = """
    probe_type : varchar(32)
    ---
    part_number = '' : varchar(32)   # manufacturer part number the geometry comes from
    probe_type_description = '' : varchar(256)
    """
    contents = [(p.probe_type, p.part_number or "", p.description) for p in probes.PROBE_TYPES]

    class Electrode(dj.Part):
        """One recording site of a probe type (1-based numbering; um, origin at the lowest-left site)."""

        definition = """
        -> master
        electrode : int32
        ---
        shank : int32
        shank_col : int32
        shank_row : int32
        x_coord : float64
        y_coord : float64
        z_coord = 0 : float64
        """

    @classmethod
    def fill_geometry(cls) -> int:
        """Insert the electrodes of every probe type that has none yet; returns rows inserted."""
        have = set((cls.Electrode & "electrode = 1").to_arrays("probe_type"))
        inserted = 0
        for p in probes.PROBE_TYPES:
            if p.part_number is None or p.probe_type in have:
                continue
            rows = probes.electrode_rows(p.probe_type)
            with cls.connection.transaction:
                cls.Electrode.insert(rows, skip_duplicates=True)
            inserted += len(rows)
        return inserted


@schema
class ElectrodeConfig(dj.Lookup):
    """One set of recorded electrodes of a probe type (named by its electrode ranges)."""

    definition = """
    -> ProbeType
    electrode_config_name : varchar(64)   # e.g. '1-384' or '1-192; 385-576'
    ---
    electrode_config_hash : char(32)      # md5 (hex) of the member electrodes, to find an existing config
    unique index (electrode_config_hash)
    """

    class ElectrodeGroup(dj.Part):
        """One group of electrodes (e.g. a shank) within a configuration."""

        definition = """
        -> master
        electrode_group : int32
        """

    class Electrode(dj.Part):
        """One electrode of a configuration."""

        definition = """
        -> master.ElectrodeGroup
        -> ProbeType.Electrode
        ---
        is_used = 1 : bool    # used as a reference/disabled site when false
        """


@schema
class Probe(dj.Lookup):
    """One physical probe, by serial number."""

    definition = """
    probe : varchar(32)   # serial number
    ---
    -> ProbeType
    probe_comment = '' : varchar(1000)
    """


@schema
class PhotostimDevice(dj.Lookup):
    """One light source used for photostimulation."""

    definition = """
    photostim_device : varchar(20)
    ---
    excitation_wavelength : decimal(5, 1)   # nm
    photostim_device_description = '' : varchar(255)
    """
    contents = [
        ("LaserGem473", 473, "Laser (Laser Quantum, Gem 473)"),
        ("LED470", 470, "LED (Thor Labs, M470F3 - 470 nm, 17.2 mW (Min) Fiber-Coupled LED)"),
        ("OBIS470", 473, "OBIS 473nm LX 50mW Laser System: Fiber Pigtail (Coherent Inc)"),
    ]


db.register("lab", schema, after_activate=ProbeType.fill_geometry)
