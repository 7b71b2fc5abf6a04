"""experiment: sessions and the vocabularies (tasks, outcomes, events...) trials are described in."""

import datajoint as dj

from . import db, lab  # noqa: F401  (lab is referenced in the table definitions)

schema = dj.Schema()


@schema
class Session(dj.Manual):
    """One behavior session of one subject (several rig files of a day can make one session)."""

    definition = """
    -> lab.Subject
    session : int16                 # 1, 2, ... per subject, in time order
    ---
    session_date : date
    session_datetime : datetime     # start (rig clock); replaces the original's session_time
    -> lab.Person
    -> lab.Rig
    unique index (subject_id, session_datetime)
    """


@schema
class Task(dj.Lookup):
    """One behavioral task."""

    definition = """
    task : varchar(24)
    ---
    task_description : varchar(1024)
    """
    contents = [
        ("audio delay", "auditory delayed response task (two-alternative forced choice)"),
        ("audio mem", "auditory working-memory task"),
        ("s1 stim", "S1 photostimulation task (two-alternative forced choice)"),
        ("foraging", "dynamic foraging task after Bari, Cohen et al. 2019 (two lick ports)"),
        ("foraging 3lp", "dynamic foraging task with three lick ports"),
        ("multi-target-licking", "multi-target licking task"),
    ]


@schema
class TaskProtocol(dj.Lookup):
    """One protocol (variant) of a task, as numbered on the rigs."""

    definition = """
    -> Task
    task_protocol : int16
    ---
    task_protocol_description : varchar(4000)
    """
    contents = [
        ("audio delay", 1, "high tone vs. low tone"),
        ("s1 stim", 2, "mini-distractors"),
        ("s1 stim", 3, "full distractors, with two distractors at different times on some left trials"),
        ("s1 stim", 4, "full distractors"),
        ("s1 stim", 5, "mini-distractors, with several levels of the mini-stimulus in the sample period"),
        ("s1 stim", 6, "full distractors; as protocol 4 with a light that turns on the mini-stimulus"),
        ("s1 stim", 7, "mini-distractors and full distractors (late delay only)"),
        ("s1 stim", 8, "mini-distractors and full distractors (very late delay only)"),
        ("s1 stim", 9, "mini-distractors, with several levels of the mini-stimulus (second version)"),
        ("foraging", 100, "moving lick ports, delay period, early-lick punishment, sound go cue, free choice"),
        ("foraging 3lp", 101, "as foraging 100 with three lick ports (left, right, middle)"),
        ("multi-target-licking", 1, "multi-target licking in 2D"),
        ("multi-target-licking", 2, "spontaneous licking"),
    ]


@schema
class WaterPort(dj.Lookup):
    """One water (lick) port."""

    definition = """
    water_port : varchar(16)
    ---
    water_port_description : varchar(255)
    """
    contents = [("left", "left lick port"), ("right", "right lick port"), ("middle", "middle lick port")] + [
        (f"mtl-{i}", f"multi-target-licking port position {i}") for i in range(1, 10)
    ]


@schema
class TrialInstruction(dj.Lookup):
    """Which side a trial instructs the animal to lick."""

    definition = """
    trial_instruction : varchar(8)
    ---
    instruction_description : varchar(255)
    """
    contents = [
        ("left", "left lick"),
        ("right", "right lick"),
        ("middle", "middle lick"),
        ("none", "no instruction (free choice)"),
    ]


@schema
class Outcome(dj.Lookup):
    """How a trial ended."""

    definition = """
    outcome : varchar(32)
    """
    contents = [("hit",), ("miss",), ("ignore",), ("N/A",)]


@schema
class EarlyLick(dj.Lookup):
    """Whether the animal licked before the go cue."""

    definition = """
    early_lick : varchar(32)
    ---
    early_lick_description : varchar(4000)
    """
    contents = [
        ("early", "early lick during sample and/or delay"),
        (
            "early, presample only",
            "early lick in the presample period, after the onset of the scheduled wave but before the sample period",
        ),
        ("no early", ""),
    ]


@schema
class TrialNoteType(dj.Lookup):
    """Kinds of free-text notes attached to trials."""

    definition = """
    trial_note_type : varchar(20)
    """
    contents = [(t,) for t in ("autolearn", "protocol #", "bad", "bitcode", "autowater", "random_seed_start")]


@schema
class TrialEventType(dj.Lookup):
    """Kinds of events within a trial (cue onsets, periods, sync markers)."""

    definition = """
    trial_event_type : varchar(12)
    """
    contents = [
        (t,)
        for t in (
            "delay",
            "go",
            "sample",
            "presample",
            "trialend",
            "videostart",
            "videoend",
            "bitcodestart",
            "choice",
            "reward",
            "doubledip",
            "bpodstart",
            "zaberstep",
            "zaberready",
        )
    ]


@schema
class ActionEventType(dj.Lookup):
    """Kinds of actions of the animal."""

    definition = """
    action_event_type : varchar(32)
    ---
    action_event_description : varchar(1000)
    """
    contents = [("left lick", ""), ("right lick", ""), ("middle lick", "")]


@schema
class Period(dj.Lookup):
    """A named trial period, from one event (plus a shift, s) to another, for rate analyses."""

    definition = """
    period : varchar(12)
    ---
    period_start : varchar(12)        # trial event type
    period_start_shift : float64      # s
    period_end : varchar(12)
    period_end_shift : float64
    """
    contents = [
        ("sample", "sample", 0.0, "delay", 0.0),
        ("delay", "delay", 0.0, "go", 0.0),
        ("response", "go", 0.0, "go", 1.2),
    ]


@schema
class PeriodForaging(dj.Lookup):
    """A named period of foraging trials (spec 1): as Period, with the trial it starts and ends in
    relative to the current one (-1: the previous trial)."""

    definition = """
    period : varchar(24)
    ---
    start_event_type : varchar(24)
    start_trial_shift : int16
    start_time_shift : float64       # s
    end_event_type : varchar(24)
    end_trial_shift : int16
    end_time_shift : float64
    period_description = '' : varchar(255)
    """
    contents = [
        ("before_2", "go", 0, -2.0, "go", 0, 0.0, "2 s before the go cue"),
        ("delay", "zaberready", 0, 0.0, "go", 0, 0.0, "lick ports in place to the go cue"),
        ("go_to_end", "go", 0, 0.0, "trialend", 0, 0.0, "go cue to trial end"),
        ("go_1.2", "go", 0, 0.0, "go", 0, 1.2, "1.2 s after the go cue"),
        ("iti_all", "trialend", -1, 0.0, "go", 0, 0.0, "previous trial's end to this go cue"),
        ("iti_first_2", "trialend", -1, 0.0, "trialend", -1, 2.0, "first 2 s after the previous trial's end"),
        ("iti_last_2", "go", 0, -2.0, "go", 0, 0.0, "last 2 s before the go cue"),
        ("delay_bitcode", "bitcodestart", 0, 0.146, "go", 0, 0.0, "end of the bitcode to the go cue"),
    ]


@schema
class PhotostimProtocol(dj.Lookup):
    """A standard photostimulation protocol of the delay-response rigs, by the rig's protocol number.

    The original hard-coded these in its ingest code; as a lookup they can be read and extended.
    """

    definition = """
    photostim_protocol : int16
    ---
    -> lab.PhotostimDevice
    duration : decimal(8, 4)     # s
    photostim_protocol_description : varchar(255)
    """
    contents = [
        (4, "OBIS470", 0.5, "ALM left hemisphere"),
        (5, "OBIS470", 0.5, "ALM right hemisphere"),
        (6, "OBIS470", 0.5, "ALM both hemispheres"),
    ]

    class Location(dj.Part):
        """One stimulated location of a protocol."""

        definition = """
        -> master
        -> lab.SkullReference
        ap_location : decimal(8, 2)   # um, anterior positive
        ml_location : decimal(8, 2)   # um, right positive
        depth : decimal(8, 2)         # um, ventral positive
        theta : decimal(5, 2)         # deg
        phi : decimal(5, 2)           # deg
        ---
        -> lab.BrainArea
        """

    LOCATIONS = {4: (-1500,), 5: (1500,), 6: (-1500, 1500)}

    @classmethod
    def fill_locations(cls) -> int:
        """Insert the ALM locations of protocols 4-6 (Bregma, AP 2.5 mm, ML +-1.5 mm, 15 deg)."""
        rows = [
            dict(
                photostim_protocol=p,
                skull_reference="Bregma",
                ap_location=2500,
                ml_location=ml,
                depth=0,
                theta=15,
                phi=15,
                brain_area="ALM",
            )
            for p, mls in cls.LOCATIONS.items()
            for ml in mls
        ]
        cls.Location.insert(rows, skip_duplicates=True)
        return len(rows)


@schema
class Photostim(dj.Manual):
    """One photostimulation setting used in a session."""

    definition = """
    -> Session
    photo_stim : int16
    ---
    -> lab.PhotostimDevice
    duration : decimal(8, 4)    # s
    waveform = null : <blob>
    """

    class PhotostimLocation(dj.Part):
        """One stimulated location of a session's photostimulation."""

        definition = """
        -> master
        -> lab.SkullReference
        ap_location : decimal(8, 2)
        ml_location : decimal(8, 2)
        depth : decimal(8, 2)
        theta : decimal(5, 2)
        phi : decimal(5, 2)
        ---
        -> lab.BrainArea
        """


@schema
class Project(dj.Lookup):
    """A project that sessions belong to."""

    definition = """
    project_name : varchar(128)
    ---
    project_desc = '' : varchar(1000)
    publication = '' : varchar(256)
    """
    contents = [
        ("MAP", "Mesoscale Activity Map project", ""),
        ("Brain-wide neural activity underlying memory-guided movement", "", "doi:10.1101/2023.03.01.530520"),
    ]


@schema
class ProjectSession(dj.Manual):
    """A session's membership in a project."""

    definition = """
    -> Project
    -> Session
    """


# --- trials: written by the behavior ingest, one session per transaction -------------------
# These are Manual tables in DataJoint's terms: DataJoint 2 lets Imported tables add no key
# attribute of their own (a trial number, an event id), and the ingest, not populate(), fills
# them from files. Times are float64 seconds (the original used decimals, which come back as
# Python Decimal objects and slow every analysis down).


@schema
class SessionTrial(dj.Manual):
    """One trial of a session; times in s from the session's first trial start."""

    definition = """
    -> Session
    trial : int32          # 1-based, in time order across the session's rig files
    ---
    start_time : float64
    stop_time : float64
    """


@schema
class BehaviorTrial(dj.Manual):
    """What a trial asked for and how the animal did."""

    definition = """
    -> SessionTrial
    ---
    -> TaskProtocol
    -> TrialInstruction
    -> EarlyLick
    -> Outcome
    auto_water = 0 : bool    # water given automatically (no lick needed)
    free_water = 0 : bool    # water given outside the task
    """


@schema
class TrialNote(dj.Manual):
    """A note of some kind about a trial (protocol number, bitcode, ...)."""

    definition = """
    -> SessionTrial
    -> TrialNoteType
    ---
    trial_note : varchar(255)
    """


@schema
class TrialEvent(dj.Manual):
    """One task event in a trial (cue, period onset), s from the trial start."""

    definition = """
    -> BehaviorTrial
    trial_event_id : int32     # numbered through the session
    ---
    -> TrialEventType
    trial_event_time : float64
    duration = 0 : float64
    """


@schema
class ActionEvent(dj.Manual):
    """One action of the animal (a lick) in a trial, s from the trial start."""

    definition = """
    -> BehaviorTrial
    action_event_id : int32    # numbered through the session
    ---
    -> ActionEventType
    action_event_time : float64
    """


@schema
class PhotostimTrial(dj.Manual):
    """A trial with photostimulation."""

    definition = """
    -> SessionTrial
    """


@schema
class PhotostimEvent(dj.Manual):
    """One photostimulation in a trial, s from the trial start."""

    definition = """
    -> PhotostimTrial
    photostim_event_id : int32
    ---
    -> Photostim
    photostim_event_time : float64
    power : float64            # mW
    """


@schema
class WaterPortChoice(dj.Manual):
    """The port the animal chose in a trial (null: no choice)."""

    definition = """
    -> BehaviorTrial
    ---
    -> [nullable] WaterPort
    """


@schema
class SessionBlock(dj.Manual):
    """One block of trials with fixed reward probabilities (foraging)."""

    definition = """
    -> Session
    block : int16
    ---
    block_start_time : float64    # s from the session's first trial start
    """

    class WaterPortRewardProbability(dj.Part):
        """A port's reward probability in a block."""

        definition = """
        -> master
        -> WaterPort
        ---
        reward_probability : float64
        """

    class BlockTrial(dj.Part):
        """A trial of a block."""

        definition = """
        -> master
        -> SessionTrial
        """


@schema
class MultiTargetLickingSessionBlock(dj.Manual):
    """One block of a multi-target-licking session: trials with the lick port at one target."""

    definition = """
    -> Session
    block : int16                    # 1-based, in time order through the session
    ---
    block_start_time : float64       # s from the session's first trial start (the block's first trial)
    trial_count : int16              # trials of the block in the session
    num_licks_for_reward : int16     # licks the animal needs to get the reward (GUI.NumLicksForReward)
    roll_deg : float64               # roll of the lick-port plane, degrees (+: right ear down; GUI.RollDeg)
    position_x_bins : int16          # targets along x (GUI.num_bins)
    position_y_bins : int16          # targets along y (1: y is fixed at GUI.Y_center)
    position_z_bins : int16          # targets along z (GUI.num_bins)
    """

    class WaterPort(dj.Part):
        """Where the block's lick port (``mtl-<trial type>``) was, in motor units."""

        definition = """
        -> master
        -> WaterPort
        ---
        position_x : float64
        position_y : float64
        position_z : float64
        """

    class BlockTrial(dj.Part):
        """A trial of the block and its place in the block."""

        definition = """
        -> master
        -> BehaviorTrial
        ---
        block_trial_number : int16       # 1-based within the block (TrialBlockOrder)
        """


@schema
class TrialAvailableReward(dj.Manual):
    """Whether a port had reward waiting at the start of a trial (foraging)."""

    definition = """
    -> BehaviorTrial
    -> WaterPort
    ---
    reward_available : bool
    """


@schema
class WaterPortSetting(dj.Manual):
    """Lick-port position in a trial (motor units) and valve opening times."""

    definition = """
    -> BehaviorTrial
    ---
    water_port_lateral_pos = null : float64
    water_port_rostrocaudal_pos = null : float64
    water_port_dorsoventral_pos = null : float64
    """

    class OpenDuration(dj.Part):
        """How long a port's valve opens for a reward, s."""

        definition = """
        -> master
        -> WaterPort
        ---
        open_duration : float64
        """


@schema
class SessionComment(dj.Manual):
    """Free-text notes about a session (e.g. the Notes column of the foraging metadata)."""

    definition = """
    -> Session
    ---
    session_comment : varchar(2048)
    """


@schema
class SessionDetails(dj.Manual):
    """Weight and water of the animal on the session's day (foraging metadata)."""

    definition = """
    -> Session
    ---
    session_weight = null : float64         # g
    session_water_earned = null : float64   # ml
    session_water_extra = null : float64    # ml
    """


db.register("experiment", schema, after_activate=PhotostimProtocol.fill_locations)
